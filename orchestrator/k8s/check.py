"""Manifests checked where they are made: files a person edited, and what `k8s render` writes.

Every problem is one line naming the file, the object (kind/name) and the field path. The
KubeRay CRDs come from --crds, else $ORCHESTRATOR_KUBERAY_CRDS; nothing is guessed. Without
them a ray.io object cannot be checked, and `k8s validate` says so instead of passing it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from orchestrator.errors import OrchestratorError
from orchestrator.k8s.validate import CRDS_HINT, crd_schemas, is_ray_kind, problems

CRDS_ENV = "ORCHESTRATOR_KUBERAY_CRDS"
KUSTOMIZE_GROUP = "kustomize.config.k8s.io/"


@dataclass
class Report:
    """What a check found: problem lines, and how many files and objects it read."""

    lines: list[str] = field(default_factory=list)
    files: int = 0
    objects: int = 0


def crd_folder(option: Path | str | None) -> Path | None:
    """The CRD folder from --crds or $ORCHESTRATOR_KUBERAY_CRDS; None when neither is set.

    A folder that is given but holds no CRDs is an error: a typo must not turn the check off.
    """
    given = option or os.environ.get(CRDS_ENV)
    if not given:
        return None
    folder = Path(given).expanduser().resolve()
    source = "--crds" if option else f"${CRDS_ENV}"
    if not folder.is_dir():
        raise OrchestratorError(f"{source} {str(given)!r} is not a folder")
    if not crd_schemas(folder):
        raise OrchestratorError(
            f"{source} {str(given)!r} holds no CustomResourceDefinition in *.yaml files"
        )
    return folder


def check_files(paths: list[Path], crd_dir: Path | None) -> Report:
    """Every object in every file, as `FILE: KIND/NAME: PATH: message` lines."""
    report = Report()
    for path in paths:
        report.files += 1
        documents = read_documents(path, report)
        for index, document in enumerate(documents):
            if not isinstance(document, dict):
                report.lines.append(f"{path}: document {index + 1}: is not a mapping, "
                                    f"but {type(document).__name__}")
                continue
            if str(document.get("apiVersion", "")).startswith(KUSTOMIZE_GROUP):
                report.lines.append(f"{path}: is a Kustomization, not an object; validate its "
                                    "output: `kubectl kustomize DIR > FILE`")
                continue
            report.objects += 1
            report.lines += [f"{path}: {line}" for line in problems(document, crd_dir)]
    return report


def read_documents(path: Path, report: Report) -> list[Any]:
    """The YAML documents of one file; a parse error is one line naming the file and line."""
    try:
        text = path.read_text()
    except OSError as exc:
        report.lines.append(f"{path}: cannot be read: {exc.strerror or exc}")
        return []
    try:
        return [doc for doc in yaml.safe_load_all(text) if doc is not None]
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        problem = getattr(exc, "problem", None) or str(exc)
        report.lines.append(f"{where}: not valid YAML: {' '.join(str(problem).split())}")
        return []


def check_rendered(manifests: list[dict[str, Any]], crd_dir: Path | None) -> list[str]:
    """Problems in what `k8s render` made; the RayJob's schema only when the CRDs are given."""
    found: list[str] = []
    for manifest in manifests:
        found += problems(manifest, crd_dir, require_crds=False)
    return found


def unchecked_note(manifests: list[dict[str, Any]], crd_dir: Path | None) -> str | None:
    """The one line render prints when a ray.io object could not meet its CRD."""
    if crd_dir is None and any(is_ray_kind(m) for m in manifests):
        return f"note: the RayJob was not checked against the KubeRay CRDs; {CRDS_HINT}"
    return None

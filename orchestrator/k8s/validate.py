"""Check manifests offline the way the API server would, before anything reaches a cluster.

Custom resources (RayJob, RayCluster) are checked against the KubeRay CRDs' OpenAPI schemas
after applying their defaults, as the API server does. The CRDs do not forbid unknown fields
(the server prunes them silently), so every object schema here is closed first: a misspelled
field is an error, not a silently dropped setting. Core objects go to `kubernetes-validate`
in strict mode; its schemas accept any string as a quantity, so quantities are checked here.
The CRDs' CEL rules (x-kubernetes-validations) are evaluated (`cel_rules`), and `lint` adds
what KubeRay's operator and the kubelet refuse later, which no schema says.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from orchestrator.k8s.cel_rules import CheckUnavailable, cel_findings
from orchestrator.k8s.lint import lint

KUBERNETES_VERSION = "1.33"
RAY_GROUP = "ray.io"
CRDS_HINT = (
    "pass --crds DIR or set ORCHESTRATOR_KUBERAY_CRDS to a folder with the CRD YAML (e.g. "
    "`kubectl get crd rayjobs.ray.io rayclusters.ray.io -o yaml > DIR/kuberay-crds.yaml`)"
)
# k8s.io/apimachinery/pkg/api/resource: the quantity grammar the CRDs also use.
QUANTITY = re.compile(
    r"^(\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))(([KMGTPE]i)|[numkMGTPE]|"
    r"([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$"
)


def load_documents(path: Path) -> list[dict[str, Any]]:
    """Every non-empty YAML document in a file."""
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def problems(
    manifest: dict[str, Any], crd_dir: Path | None, require_crds: bool = True
) -> list[str]:
    """Everything wrong with one manifest, each as `kind/name: path: message`; [] if valid.

    Kinds that a CRD in crd_dir defines are checked against it (schema, then CEL rules); all
    others must be core Kubernetes kinds. A ray.io object without crd_dir is reported as not
    checked, unless require_crds is False (`k8s render` says so once instead).
    """
    name = f"{manifest.get('kind')}/{(manifest.get('metadata') or {}).get('name')}"
    crds = crd_schemas(crd_dir) if crd_dir is not None else {}
    key = (manifest.get("apiVersion"), manifest.get("kind"))
    if key in crds:
        found = _crd_problems(manifest, crd_dir, key)
    elif is_ray_kind(manifest) and crd_dir is None:
        found = [f"unknown kind: not checked, the KubeRay CRDs are not available; {CRDS_HINT}"]
        found = found if require_crds else []
    else:
        found = _core_problems(manifest)
    found += [f"{where}: {text}" for where, text in _bad_quantities(manifest, "")]
    found += [f"{where}: {text}" for where, text in lint(manifest)]
    return [f"{name}: {text}" for text in dict.fromkeys(found)]


def is_ray_kind(manifest: dict[str, Any]) -> bool:
    """A KubeRay custom resource (ray.io/...), which only the CRDs describe."""
    return str(manifest.get("apiVersion", "")).split("/")[0] == RAY_GROUP


@cache
def crd_schemas(crd_dir: Path) -> dict[tuple[str, str], dict[str, Any]]:
    """(apiVersion, kind) -> that version's openAPIV3Schema, for every CRD in the folder."""
    schemas = {}
    for path in sorted([*crd_dir.glob("*.yaml"), *crd_dir.glob("*.yml")]):
        for doc in load_documents(path):
            # `kubectl get crd A B -o yaml` writes a List of them.
            for crd in doc.get("items", []) if doc.get("kind") == "List" else [doc]:
                if crd.get("kind") == "CustomResourceDefinition":
                    _add_crd(schemas, crd)
    return schemas


def _add_crd(schemas: dict[tuple[str, str], dict[str, Any]], crd: dict[str, Any]) -> None:
    """Every version of one CRD."""
    group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
    for version in crd["spec"]["versions"]:
        schema = version["schema"]["openAPIV3Schema"]
        schemas[(f"{group}/{version['name']}", kind)] = schema


@cache
def _validator(crd_dir: Path, key: tuple[str, str]) -> jsonschema.Draft7Validator:
    return jsonschema.Draft7Validator(_closed(crd_schemas(crd_dir)[key]))


def _crd_problems(manifest: dict[str, Any], crd_dir: Path, key: tuple[str, str]) -> list[str]:
    defaulted = apply_defaults(copy.deepcopy(manifest), crd_schemas(crd_dir)[key])
    validator = _validator(crd_dir, key)
    found = [
        f"{_path(error.absolute_path)}: {error.message}"
        for error in sorted(validator.iter_errors(defaulted), key=lambda e: list(e.path))
    ]
    rules = cel_findings(defaulted, crd_schemas(crd_dir)[key])
    return found + [f"{where}: {text}" for where, text in rules]


def _core_problems(manifest: dict[str, Any]) -> list[str]:
    try:
        import kubernetes_validate
    except ImportError as exc:
        raise CheckUnavailable(
            "core Kubernetes objects cannot be checked: kubernetes-validate is not installed "
            "(`pip install 'rnn-orchestrator[k8s]'`)"
        ) from exc

    try:
        kubernetes_validate.validate(manifest, KUBERNETES_VERSION, strict=True)
    except kubernetes_validate.SchemaNotFoundError as exc:
        return [f"unknown kind: {exc.message}"]
    except kubernetes_validate.ValidationError as exc:
        return [f"{_path(exc.absolute_path)}: {exc.message}"]
    return []


def apply_defaults(value: Any, schema: dict[str, Any]) -> Any:
    """Fill in the schema's `default`s where fields are missing (structural defaulting)."""
    if isinstance(value, dict):
        for key, sub in schema.get("properties", {}).items():
            if key not in value and "default" in sub:
                value[key] = copy.deepcopy(sub["default"])
            if key in value:
                apply_defaults(value[key], sub)
        extra = schema.get("additionalProperties")
        if isinstance(extra, dict):
            for key in set(value) - set(schema.get("properties", {})):
                apply_defaults(value[key], extra)
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for item in value:
            apply_defaults(item, schema["items"])
    return value


def _closed(schema: dict[str, Any]) -> dict[str, Any]:
    """A copy in which objects with listed properties reject any other property."""
    schema = copy.deepcopy(schema)
    _close_in_place(schema)
    return schema


def _close_in_place(schema: dict[str, Any]) -> None:
    if "properties" in schema and "additionalProperties" not in schema:
        if not schema.get("x-kubernetes-preserve-unknown-fields"):
            schema["additionalProperties"] = False
    for sub in schema.get("properties", {}).values():
        _close_in_place(sub)
    for key in ("items", "additionalProperties"):
        if isinstance(schema.get(key), dict):
            _close_in_place(schema[key])
    for key in ("allOf", "anyOf", "oneOf"):
        for sub in schema.get(key, []):
            _close_in_place(sub)


def _bad_quantities(value: Any, where: str) -> Iterator[tuple[str, str]]:
    """Container resource quantities anywhere in the manifest that Kubernetes would refuse."""
    if isinstance(value, dict):
        for key, item in value.items():
            path = f"{where}.{key}" if where else key
            if key in ("limits", "requests") and isinstance(item, dict):
                for resource, quantity in item.items():
                    if not QUANTITY.match(str(quantity)):
                        yield f"{path}.{resource}", f"{quantity!r} is not a quantity"
            else:
                yield from _bad_quantities(item, path)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _bad_quantities(item, f"{where}[{index}]")


def _path(parts: Any) -> str:
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else f".{part}"
    return text.lstrip(".") or "(root)"

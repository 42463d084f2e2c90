"""Lint rules for object metadata: the typos the API server either rejects late or keeps.

A RayJob's or RayCluster's `metadata` (and every pod template's) is an open object in the
CRD schema, so `lables:` or a label value with a space passes the schema and fails at the
API server or, worse, is kept and never matched. Each rule yields (field path, message).
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterator
from typing import Any

Finding = tuple[str, str]

METADATA_KEYS = (
    "name", "generateName", "namespace", "labels", "annotations", "ownerReferences",
    "finalizers", "uid", "resourceVersion", "generation", "creationTimestamp",
    "deletionTimestamp", "deletionGracePeriodSeconds", "managedFields", "selfLink",
)
TEMPLATE_METADATA_KEYS = ("name", "namespace", "labels", "annotations")
DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
DNS1035_LABEL = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
DNS1123_SUBDOMAIN = re.compile(
    r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
)
_NAME_PART = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
# KubeRay appends suffixes to these names; its operator refuses longer ones.
RAY_NAME_LIMITS = {"RayJob": 47, "RayCluster": 63}


def did_you_mean(word: str, choices: tuple[str, ...], cutoff: float = 0.6) -> str:
    """' (did you mean X?)' for a near miss, else ''; a typo is the usual cause."""
    by_lower = {choice.lower(): choice for choice in choices}
    close = difflib.get_close_matches(word.lower(), list(by_lower), n=1, cutoff=cutoff)
    close = [by_lower[match] for match in close]
    return f" (did you mean {close[0]!r}?)" if close else ""


def metadata_findings(metadata: Any, kind: str, where: str = "metadata") -> Iterator[Finding]:
    """The object's own metadata: known keys, a valid name and namespace, labels, annotations."""
    if metadata is None:
        yield f"{where}.name", "is required (metadata is missing)"
        return
    if not isinstance(metadata, dict):
        yield where, f"must be a mapping, not {metadata!r}"
        return
    yield from unknown_keys(metadata, METADATA_KEYS, where)
    yield from name_findings(metadata.get("name"), kind, f"{where}.name")
    namespace = metadata.get("namespace")
    if namespace is not None and not _is_dns_label(namespace):
        yield f"{where}.namespace", (
            f"{namespace!r} is not a valid namespace: lowercase letters, digits and '-', "
            "at most 63, starting and ending with a letter or digit"
        )
    yield from label_findings(metadata.get("labels"), f"{where}.labels")
    yield from annotation_findings(metadata.get("annotations"), f"{where}.annotations")


def template_metadata_findings(metadata: Any, where: str) -> Iterator[Finding]:
    """A pod template's metadata: only labels and annotations mean anything there."""
    if metadata is None:
        return
    if not isinstance(metadata, dict):
        yield where, f"must be a mapping, not {metadata!r}"
        return
    yield from unknown_keys(metadata, TEMPLATE_METADATA_KEYS, where)
    yield from label_findings(metadata.get("labels"), f"{where}.labels")
    yield from annotation_findings(metadata.get("annotations"), f"{where}.annotations")


def unknown_keys(mapping: dict[str, Any], known: tuple[str, ...], where: str) -> Iterator[Finding]:
    """Keys the API server would drop or refuse; usually a misspelling of a known one."""
    for key in mapping:
        if key not in known:
            yield f"{where}.{key}", (
                f"unknown field {key!r}{did_you_mean(str(key), known)}; valid: {', '.join(known)}"
            )


def name_findings(name: Any, kind: str, where: str) -> Iterator[Finding]:
    """Names: DNS-1035 labels for KubeRay kinds (its operator's rule), else DNS-1123 subdomains."""
    if name is None:
        yield where, "is required"
        return
    text = str(name)
    if kind in RAY_NAME_LIMITS:
        limit = RAY_NAME_LIMITS[kind]
        if len(text) > limit or not DNS1035_LABEL.match(text):
            yield where, (
                f"{text!r} is not a valid {kind} name: at most {limit} lowercase letters, "
                "digits and '-', starting with a letter and ending with a letter or digit"
            )
    elif len(text) > 253 or not DNS1123_SUBDOMAIN.match(text):
        yield where, (
            f"{text!r} is not a valid name: lowercase letters, digits, '-' and '.', "
            "starting and ending with a letter or digit (DNS-1123 subdomain)"
        )


def label_findings(labels: Any, where: str) -> Iterator[Finding]:
    """Labels follow the annotation rules, and their values are at most 63 name characters."""
    yield from annotation_findings(labels, where)
    if not isinstance(labels, dict):
        return
    for key, value in labels.items():
        if not isinstance(value, str):
            continue  # annotation_findings said so
        if len(value) > 63 or (value and not _NAME_PART.match(value)):
            yield f"{where}.{key}", (
                f"value {value!r} is not a valid label value: at most 63 letters, digits, "
                "'-', '_' or '.', starting and ending with a letter or digit"
            )


def annotation_findings(annotations: Any, where: str) -> Iterator[Finding]:
    """Annotation keys follow the label-key rule; values may be any string, but strings."""
    if annotations is None:
        return
    if not isinstance(annotations, dict):
        yield where, f"must be a mapping of strings, not {annotations!r}"
        return
    for key, value in annotations.items():
        yield from _key_findings(key, f"{where}.{key}")
        if not isinstance(value, str):
            yield f"{where}.{key}", f"value {value!r} must be a string; quote it"


def _key_findings(key: Any, where: str) -> Iterator[Finding]:
    if not is_qualified_name(key):
        yield where, (
            f"key {key!r} is not valid: an optional DNS prefix and '/', then at most 63 "
            "letters, digits, '-', '_' or '.' starting and ending with a letter or digit"
        )


def is_qualified_name(key: Any) -> bool:
    """Kubernetes' qualified name: `[prefix/]name`, the syntax of label and annotation keys."""
    if not isinstance(key, str):
        return False
    prefix, _, name = key.rpartition("/")
    if "/" in key and (not prefix or len(prefix) > 253 or not DNS1123_SUBDOMAIN.match(prefix)):
        return False
    return len(name) <= 63 and bool(_NAME_PART.match(name))


def _is_dns_label(text: Any) -> bool:
    return isinstance(text, str) and len(text) <= 63 and bool(DNS1123_LABEL.match(text))

"""Lint rules for pod specs: what the schemas accept and a scheduler or kubelet refuses.

The OpenAPI schemas let any string through as a resource name, a toleration operator or an
image; the API server, the scheduler or the kubelet then rejects the pod, or leaves it
Pending forever (a GPU spelled `gpu` matches no node). These rules find those mistakes in
the pod templates of RayJobs, RayClusters and core workloads. Each yields (path, message).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from decimal import Decimal, InvalidOperation
from typing import Any

from orchestrator.k8s.lint_meta import DNS1123_SUBDOMAIN, Finding, did_you_mean, label_findings

PULL_POLICIES = ("Always", "IfNotPresent", "Never")
TOLERATION_OPERATORS = ("Exists", "Equal")
TAINT_EFFECTS = ("NoSchedule", "PreferNoSchedule", "NoExecute")
STANDARD_RESOURCES = ("cpu", "memory", "ephemeral-storage", "storage")
KNOWN_DEVICES = (
    "nvidia.com/gpu", "amd.com/gpu", "gpu.intel.com/i915", "gpu.intel.com/xe",
    "aws.amazon.com/neuron", "aws.amazon.com/neuroncore", "google.com/tpu", "habana.ai/gaudi",
)
_BINARY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
_DECIMAL = {"n": Decimal("1e-9"), "u": Decimal("1e-6"), "m": Decimal("1e-3"), "": 1,
            "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "P": 10**15, "E": 10**18}
_QUANTITY = re.compile(r"^([+-]?(?:\d+(?:\.\d*)?|\.\d+))(Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE]|"
                       r"[eE][+-]?\d+)?$")
_PORT_NAME = re.compile(r"^(?=.*[a-z])[a-z0-9]([a-z0-9-]*[a-z0-9])?$")


def pod_spec_findings(spec: Any, where: str, claims: tuple[str, ...] = ()) -> Iterator[Finding]:
    """Every rule below, on one pod spec at `where` (claims: a StatefulSet's claim templates)."""
    if not isinstance(spec, dict):
        return
    volumes = {v.get("name") for v in spec.get("volumes") or [] if isinstance(v, dict)}
    volumes.update(claims)
    for field in ("initContainers", "containers"):
        for index, container in enumerate(spec.get(field) or []):
            if isinstance(container, dict):
                at = f"{where}.{field}[{index}]"
                yield from container_findings(container, at, volumes)
    for index, toleration in enumerate(spec.get("tolerations") or []):
        yield from toleration_findings(toleration, f"{where}.tolerations[{index}]")
    yield from label_findings(spec.get("nodeSelector"), f"{where}.nodeSelector")
    yield from security_context_findings(spec.get("securityContext"), f"{where}.securityContext")


def container_findings(container: dict[str, Any], where: str, volumes: set) -> Iterator[Finding]:
    yield from image_findings(container, where)
    yield from resource_findings(container.get("resources"), f"{where}.resources")
    yield from mount_findings(container.get("volumeMounts"), volumes, f"{where}.volumeMounts")
    yield from env_findings(container.get("env"), f"{where}.env")
    yield from port_findings(container.get("ports"), f"{where}.ports")
    yield from security_context_findings(container.get("securityContext"),
                                         f"{where}.securityContext")


def image_findings(container: dict[str, Any], where: str) -> Iterator[Finding]:
    """An image is required, and `:latest` (or no tag) makes a retried job run other code."""
    image = container.get("image")
    if not image or not str(image).strip():
        yield f"{where}.image", "is required: the image built from k8s/Dockerfile, with a tag"
    elif "@" not in image and (":" not in image.rsplit("/", 1)[-1]
                               or image.endswith(":latest")):
        yield f"{where}.image", (
            f"{image!r} has no pinned version (`:latest` or no tag); use a version tag or "
            "@sha256 digest so every pod and every retry runs the same code"
        )
    policy = container.get("imagePullPolicy")
    if policy is not None and policy not in PULL_POLICIES:
        yield f"{where}.imagePullPolicy", (
            f"{policy!r} is not valid{did_you_mean(str(policy), PULL_POLICIES)}; "
            f"valid: {', '.join(PULL_POLICIES)}"
        )


def parse_quantity(text: Any) -> Decimal | None:
    """A Kubernetes quantity ('500m', '4Gi', '1e3') as a number, or None if it is not one."""
    found = _QUANTITY.match(str(text).strip())
    if found is None:
        return None
    number, suffix = Decimal(found.group(1)), found.group(2) or ""
    try:
        if suffix[:1] in ("e", "E"):
            return number * (Decimal(10) ** int(suffix[1:]))
        return number * Decimal(_BINARY.get(suffix) or _DECIMAL[suffix])
    except (InvalidOperation, KeyError):
        return None


def resource_findings(resources: Any, where: str) -> Iterator[Finding]:
    """Resource names that match no node, and requests a kubelet would refuse."""
    if not isinstance(resources, dict):
        return
    requests = resources.get("requests") or {}
    limits = resources.get("limits") or {}
    if not isinstance(requests, dict) or not isinstance(limits, dict):
        return
    for section, values in (("requests", requests), ("limits", limits)):
        for name in values:
            yield from resource_name_findings(str(name), f"{where}.{section}.{name}")
    for name in sorted(set(requests) | set(limits)):
        if _is_extended(str(name)):
            yield from extended_resource_findings(str(name), requests, limits, where)
        elif name in requests and name in limits:
            yield from _request_within_limit(str(name), requests[name], limits[name], where)


def resource_name_findings(name: str, where: str) -> Iterator[Finding]:
    """`gpu`, `nvidia/gpu` or `nvidia.com/gpus` are accepted by nobody's device plugin."""
    if name in STANDARD_RESOURCES or name.startswith("hugepages-") or name in KNOWN_DEVICES:
        return
    prefix, _, _ = name.rpartition("/")
    if not prefix or "." not in prefix or not DNS1123_SUBDOMAIN.match(prefix):
        hint = did_you_mean(name, KNOWN_DEVICES + STANDARD_RESOURCES)
        if "gpu" in name.lower():  # before 'cpu', which is one letter from 'gpu'
            hint = " (did you mean 'nvidia.com/gpu'?)"
        yield where, (
            f"resource {name!r} is not a standard resource ({', '.join(STANDARD_RESOURCES)}) "
            f"nor a device plugin's domain/name{hint}"
        )
    elif hint := did_you_mean(name, KNOWN_DEVICES, cutoff=0.85):
        yield where, f"resource {name!r} is offered by no known device plugin{hint}"


def extended_resource_findings(
    name: str, requests: dict[str, Any], limits: dict[str, Any], where: str
) -> Iterator[Finding]:
    """Devices cannot be shared or overcommitted: whole numbers, and requests == limits."""
    if name not in limits:
        yield f"{where}.limits.{name}", (
            f"is missing: {name} is an extended resource and needs a limit "
            f"(requests {requests[name]!r})"
        )
    for section, values in (("requests", requests), ("limits", limits)):
        if name in values:
            amount = parse_quantity(values[name])
            if amount is not None and amount != amount.to_integral_value():
                yield f"{where}.{section}.{name}", (
                    f"{values[name]!r} is fractional; {name} is counted in whole devices "
                    "(use ray.gpus_per_worker for Ray's fractional GPUs)"
                )
    if name in requests and name in limits:
        if parse_quantity(requests[name]) != parse_quantity(limits[name]):
            yield f"{where}.requests.{name}", (
                f"{requests[name]!r} differs from the limit {limits[name]!r}; extended "
                "resources need requests equal to limits"
            )


def _request_within_limit(name: str, request: Any, limit: Any, where: str) -> Iterator[Finding]:
    wanted, allowed = parse_quantity(request), parse_quantity(limit)
    if wanted is not None and allowed is not None and wanted > allowed:
        yield f"{where}.requests.{name}", (
            f"{request!r} is more than the limit {limit!r}; a request must not exceed its limit"
        )


def _is_extended(name: str) -> bool:
    return "/" in name and not name.startswith("kubernetes.io/") and not name.startswith(
        "requests."
    )


def mount_findings(mounts: Any, volumes: set, where: str) -> Iterator[Finding]:
    """A mount of a volume the pod does not declare is refused by the API server."""
    for index, mount in enumerate(mounts or []):
        if isinstance(mount, dict) and mount.get("name") not in volumes:
            yield f"{where}[{index}].name", (
                f"{mount.get('name')!r} is not a volume of this pod; volumes: "
                f"{', '.join(sorted(str(v) for v in volumes)) or 'none'}"
            )


def env_findings(env: Any, where: str) -> Iterator[Finding]:
    """An env var takes `value` or `valueFrom`, not both; a second one of a name hides the first."""
    seen: set[str] = set()
    for index, item in enumerate(env or []):
        if not isinstance(item, dict):
            continue
        if "value" in item and "valueFrom" in item:
            yield f"{where}[{index}]", f"{item.get('name')!r} sets both value and valueFrom"
        if "value" in item and not isinstance(item["value"], str):
            yield f"{where}[{index}].value", f"{item['value']!r} must be a string; quote it"
        if item.get("name") in seen:
            yield f"{where}[{index}].name", f"{item.get('name')!r} is set twice"
        seen.add(item.get("name"))


def port_findings(ports: Any, where: str) -> Iterator[Finding]:
    """Ports 1-65535; names at most 15 lowercase letters, digits and '-' (IANA service)."""
    for index, port in enumerate(ports or []):
        if not isinstance(port, dict):
            continue
        number = port.get("containerPort")
        if isinstance(number, int) and not 1 <= number <= 65535:
            yield f"{where}[{index}].containerPort", f"{number} is not in 1-65535"
        name = port.get("name")
        if name is not None and (len(str(name)) > 15 or not _PORT_NAME.match(str(name))):
            yield f"{where}[{index}].name", (
                f"{name!r} is not a valid port name: at most 15 lowercase letters, digits "
                "and '-', with at least one letter"
            )


def toleration_findings(toleration: Any, where: str) -> Iterator[Finding]:
    """Tolerations the API server refuses, or that tolerate nothing the author meant."""
    if not isinstance(toleration, dict):
        return
    operator = toleration.get("operator", "Equal")
    if operator not in TOLERATION_OPERATORS:
        yield f"{where}.operator", (
            f"{operator!r} is not valid{did_you_mean(str(operator), TOLERATION_OPERATORS)}; "
            f"valid: {', '.join(TOLERATION_OPERATORS)}"
        )
    elif operator == "Exists" and toleration.get("value"):
        yield f"{where}.value", (
            f"{toleration['value']!r} must be empty when operator is Exists "
            "(use operator Equal to match a value)"
        )
    elif operator == "Equal" and not toleration.get("key"):
        yield f"{where}.key", "is required when operator is Equal (Exists matches every key)"
    effect = toleration.get("effect")
    if effect and effect not in TAINT_EFFECTS:
        yield f"{where}.effect", (
            f"{effect!r} is not valid{did_you_mean(str(effect), TAINT_EFFECTS)}; "
            f"valid: {', '.join(TAINT_EFFECTS)} (or empty for all)"
        )
    if "tolerationSeconds" in toleration and effect != "NoExecute":
        yield f"{where}.tolerationSeconds", "only applies with effect NoExecute"


def security_context_findings(context: Any, where: str) -> Iterator[Finding]:
    """runAsNonRoot with runAsUser 0 can never start; the kubelet refuses the container."""
    if isinstance(context, dict) and context.get("runAsNonRoot") and context.get(
        "runAsUser"
    ) == 0:
        yield f"{where}.runAsUser", "0 is root, but runAsNonRoot is true; use the image's uid"

"""Lint rules for what the schemas miss: the checks KubeRay's operator and the API server make
after admission, and the mistakes a person makes editing a manifest by hand.

The KubeRay CRDs list some enums only in Go (submissionMode, serviceType), allow negative
durations, and leave the operator to refuse a suspended job that is never shut down, an
incomplete deletionStrategy, a worker group with minReplicas > maxReplicas, or a
runtimeEnvYAML that is not YAML. Such an object is accepted by `kubectl apply` and then
fails (or sits) on the cluster; these rules fail it here. One small function per rule, each
yielding (field path, message); `lint` runs the ones that apply to a manifest's kind.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import yaml

from orchestrator.k8s.lint_meta import (
    Finding,
    did_you_mean,
    label_findings,
    metadata_findings,
    template_metadata_findings,
)
from orchestrator.k8s.lint_pods import pod_spec_findings

SUBMISSION_MODES = ("K8sJobMode", "HTTPMode", "InteractiveMode", "SidecarMode")
SERVICE_TYPES = ("ClusterIP", "NodePort", "LoadBalancer", "ExternalName")
# Deletion happens in this order; KubeRay wants non-decreasing TTLs along it.
DELETION_ORDER = ("DeleteWorkers", "DeleteCluster", "DeleteSelf")
RAY_RESOURCE_PARAMS = ("num-cpus", "num-gpus", "memory", "resources")
RAY_NUMBER_PARAMS = ("num-cpus", "num-gpus", "memory", "object-store-memory")
MIN_TOKEN_AUTH_RAY = (2, 52)
# kind -> the path of its pod template
WORKLOAD_TEMPLATES = {
    "Deployment": ("spec", "template"), "StatefulSet": ("spec", "template"),
    "DaemonSet": ("spec", "template"), "ReplicaSet": ("spec", "template"),
    "Job": ("spec", "template"), "CronJob": ("spec", "jobTemplate", "spec", "template"),
}


def lint(manifest: dict[str, Any]) -> list[Finding]:
    """Every finding for one manifest: metadata, KubeRay's rules, and each pod template's."""
    kind = str(manifest.get("kind"))
    found = list(metadata_findings(manifest.get("metadata"), kind))
    spec = manifest.get("spec")
    if kind == "RayJob" and isinstance(spec, dict):
        found += rayjob_findings(spec, "spec")
    elif kind == "RayCluster" and isinstance(spec, dict):
        found += cluster_findings(spec, "spec", autoscaling=_autoscaling(spec))
    elif kind == "Pod":
        found += pod_spec_findings(spec, "spec")
    elif kind in WORKLOAD_TEMPLATES:
        claims = tuple(str(_dig(claim, ("metadata", "name"))) for claim in
                       _dig(manifest, ("spec", "volumeClaimTemplates")) or [])
        found += template_findings(_dig(manifest, WORKLOAD_TEMPLATES[kind]),
                                   ".".join(WORKLOAD_TEMPLATES[kind]), claims)
    return found


def template_findings(template: Any, where: str, claims: tuple[str, ...] = ()) -> Iterator[Finding]:
    """A pod template: its metadata and its pod spec."""
    if not isinstance(template, dict):
        return
    yield from template_metadata_findings(template.get("metadata"), f"{where}.metadata")
    yield from pod_spec_findings(template.get("spec"), f"{where}.spec", claims)


def rayjob_findings(spec: dict[str, Any], where: str) -> list[Finding]:
    found = [
        *submission_findings(spec, where), *lifetime_findings(spec, where),
        *cluster_source_findings(spec, where), *deletion_findings(spec, where),
        *runtime_env_findings(spec, where),
    ]
    cluster = spec.get("rayClusterSpec")
    if isinstance(cluster, dict):
        found += cluster_findings(cluster, f"{where}.rayClusterSpec", _autoscaling(cluster))
    found += template_findings(spec.get("submitterPodTemplate"), f"{where}.submitterPodTemplate")
    return found


def submission_findings(spec: dict[str, Any], where: str) -> Iterator[Finding]:
    """submissionMode is an enum only in KubeRay's Go code; each mode limits other fields."""
    mode = spec.get("submissionMode", "K8sJobMode")
    if mode not in SUBMISSION_MODES:
        yield f"{where}.submissionMode", (
            f"{mode!r} is not valid{did_you_mean(str(mode), SUBMISSION_MODES)}; "
            f"valid: {', '.join(SUBMISSION_MODES)}"
        )
    entrypoint = spec.get("entrypoint")
    if mode != "InteractiveMode" and (not isinstance(entrypoint, str) or not entrypoint.strip()):
        yield f"{where}.entrypoint", (
            f"{entrypoint!r} is empty; the job needs a command to run (only InteractiveMode "
            "submits it later)"
        )
    if mode == "InteractiveMode" and (spec.get("backoffLimit") or 0) > 0:
        yield f"{where}.backoffLimit", "must be 0 with submissionMode InteractiveMode"
    if mode == "SidecarMode":
        for field in ("submitterPodTemplate", "submitterConfig"):
            if field in spec:
                yield f"{where}.{field}", "is not supported with submissionMode SidecarMode"


def lifetime_findings(spec: dict[str, Any], where: str) -> Iterator[Finding]:
    """Durations and retry counts KubeRay refuses, and suspend/shutdown combinations."""
    for field, least in (("ttlSecondsAfterFinished", 0), ("backoffLimit", 0),
                         ("activeDeadlineSeconds", 1), ("preRunningDeadlineSeconds", 1)):
        value = spec.get(field)
        if isinstance(value, int) and value < least:
            yield f"{where}.{field}", f"{value} must be at least {least} (seconds or retries)"
    shutdown = spec.get("shutdownAfterJobFinishes", False)
    if spec.get("suspend") and not shutdown:
        yield f"{where}.suspend", (
            "true needs shutdownAfterJobFinishes: true; KubeRay refuses to suspend a job "
            "whose cluster outlives it"
        )
    ttl = spec.get("ttlSecondsAfterFinished")
    if not shutdown and isinstance(ttl, int) and ttl > 0:
        yield f"{where}.ttlSecondsAfterFinished", (
            f"{ttl} has no effect without shutdownAfterJobFinishes: true; KubeRay refuses it"
        )


def cluster_source_findings(spec: dict[str, Any], where: str) -> Iterator[Finding]:
    """A job either brings its cluster (rayClusterSpec) or names one (clusterSelector)."""
    selector = spec.get("clusterSelector") or {}
    if not selector and not spec.get("rayClusterSpec"):
        yield f"{where}.rayClusterSpec", "is required unless clusterSelector names a RayCluster"
    if not selector:
        return
    if not selector.get("ray.io/cluster"):
        yield f"{where}.clusterSelector", "must name the cluster with the key ray.io/cluster"
    if spec.get("suspend"):
        yield f"{where}.suspend", "is not supported with clusterSelector"
    if (spec.get("backoffLimit") or 0) > 0:
        yield f"{where}.backoffLimit", "must be 0 with clusterSelector"
    if spec.get("submissionMode") == "SidecarMode":
        yield f"{where}.submissionMode", "SidecarMode is not supported with clusterSelector"


def deletion_findings(spec: dict[str, Any], where: str) -> Iterator[Finding]:
    """What KubeRay refuses in a deletionStrategy beyond the CRD's CEL rules."""
    strategy = spec.get("deletionStrategy")
    if not isinstance(strategy, dict):
        return
    at = f"{where}.deletionStrategy"
    for field in ("onSuccess", "onFailure"):
        if field in strategy and not (strategy[field] or {}).get("policy"):
            yield f"{at}.{field}.policy", "is required: DeleteCluster, DeleteWorkers, DeleteSelf "\
                "or DeleteNone"
        policy = (strategy.get(field) or {}).get("policy")
        if policy == "DeleteNone" and spec.get("shutdownAfterJobFinishes"):
            yield f"{at}.{field}.policy", "DeleteNone contradicts shutdownAfterJobFinishes: true"
        if policy == "DeleteWorkers" and _autoscaling(spec.get("rayClusterSpec")):
            yield f"{at}.{field}.policy", "DeleteWorkers is not supported with autoscaling"
    rules = strategy.get("deletionRules")
    if isinstance(rules, list) and rules:
        if spec.get("shutdownAfterJobFinishes"):
            yield f"{at}.deletionRules", (
                "cannot be used with shutdownAfterJobFinishes: true; set it to false"
            )
        yield from deletion_rule_findings(rules, spec, f"{at}.deletionRules")


def deletion_rule_findings(rules: list[Any], spec: dict[str, Any], where: str) -> Iterator[Finding]:
    """One rule per (condition, policy); TTLs must not delete the job before its workers."""
    ttls: dict[tuple[str, str], dict[str, int]] = {}
    for index, rule in enumerate(rules):
        condition = (rule or {}).get("condition") or {}
        policy = (rule or {}).get("policy")
        key = ("jobStatus", condition["jobStatus"]) if "jobStatus" in condition else (
            "jobDeploymentStatus", condition.get("jobDeploymentStatus"))
        if policy == "DeleteWorkers" and _autoscaling(spec.get("rayClusterSpec")):
            yield f"{where}[{index}].policy", "DeleteWorkers is not supported with autoscaling"
        if policy in ttls.setdefault(key, {}):
            yield f"{where}[{index}]", f"duplicate rule for {policy} when {key[0]} is {key[1]}"
        ttls[key][policy] = condition.get("ttlSeconds", 0)
    for (field, status), by_policy in ttls.items():
        order = [(p, by_policy[p]) for p in DELETION_ORDER if p in by_policy]
        for (before, early), (after, late) in zip(order, order[1:], strict=False):
            if isinstance(early, int) and isinstance(late, int) and late < early:
                yield where, (
                    f"when {field} is {status}: {after} ttlSeconds {late} must be at least "
                    f"{before} ttlSeconds {early}"
                )


def runtime_env_findings(spec: dict[str, Any], where: str) -> Iterator[Finding]:
    """runtimeEnvYAML is YAML inside a string: only KubeRay parses it, at submission."""
    text = spec.get("runtimeEnvYAML")
    if text is None:
        return
    try:
        runtime_env = yaml.safe_load(text) if isinstance(text, str) else text
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f" (line {mark.line + 1} of the string)" if mark else ""
        yield f"{where}.runtimeEnvYAML", f"is not valid YAML{line}: {getattr(exc, 'problem', exc)}"
        return
    if runtime_env is not None and not isinstance(runtime_env, dict):
        yield f"{where}.runtimeEnvYAML", (
            f"must be a YAML mapping (pip:, env_vars:, working_dir: ...), not {runtime_env!r}"
        )


def cluster_findings(cluster: dict[str, Any], where: str, autoscaling: bool) -> list[Finding]:
    """A RayCluster spec (on its own or inside a RayJob): head, worker groups, options."""
    found = list(head_findings(cluster.get("headGroupSpec"), f"{where}.headGroupSpec"))
    groups = cluster.get("workerGroupSpecs") or []
    names: set[Any] = set()
    for index, group in enumerate(groups if isinstance(groups, list) else []):
        if isinstance(group, dict):
            at = f"{where}.workerGroupSpecs[{index}]"
            found += worker_group_findings(group, at, autoscaling)
            if group.get("groupName") in names:
                found.append((f"{at}.groupName", f"{group['groupName']!r} is used twice"))
            names.add(group.get("groupName"))
    found += cluster_option_findings(cluster, where)
    return found


def head_findings(head: Any, where: str) -> Iterator[Finding]:
    if not isinstance(head, dict):
        return
    service = head.get("serviceType")
    if service is not None and service not in SERVICE_TYPES:
        yield f"{where}.serviceType", (
            f"{service!r} is not valid{did_you_mean(str(service), SERVICE_TYPES)}; "
            f"valid: {', '.join(SERVICE_TYPES)}"
        )
    yield from group_findings(head, where)


def worker_group_findings(group: dict[str, Any], where: str, autoscaling: bool) -> list[Finding]:
    """Replica bounds KubeRay refuses (or silently clamps), and the pod template."""
    found: list[Finding] = []
    low, high, replicas = (group.get(f) for f in ("minReplicas", "maxReplicas", "replicas"))
    for field, value in (("minReplicas", low), ("maxReplicas", high), ("replicas", replicas),
                         ("idleTimeoutSeconds", group.get("idleTimeoutSeconds"))):
        if isinstance(value, int) and value < 0:
            found.append((f"{where}.{field}", f"{value} must not be negative"))
    if isinstance(low, int) and isinstance(high, int) and low > high:
        found.append((f"{where}.minReplicas", f"{low} is more than maxReplicas {high}"))
    elif isinstance(replicas, int) and isinstance(low, int) and isinstance(high, int) and not (
        low <= replicas <= high
    ):
        found.append((f"{where}.replicas", f"{replicas} is outside [minReplicas {low}, "
                      f"maxReplicas {high}]; KubeRay would clamp it"))
    if not autoscaling and (low is None or high is None):
        found.append((where, "needs both minReplicas and maxReplicas without autoscaling"))
    hosts = group.get("numOfHosts")
    if isinstance(hosts, int) and hosts < 1:
        found.append((f"{where}.numOfHosts", f"{hosts} must be at least 1"))
    found += group_findings(group, where)
    return found


def group_findings(group: dict[str, Any], where: str) -> Iterator[Finding]:
    """What head and worker groups share: rayStartParams, labels, the pod template."""
    params = group.get("rayStartParams") or {}
    if isinstance(params, dict):
        yield from ray_start_param_findings(params, group, f"{where}.rayStartParams")
    yield from label_findings(group.get("labels"), f"{where}.labels")
    template = group.get("template")
    yield from template_findings(template, f"{where}.template")
    containers = _dig(template, ("spec", "containers"))
    if isinstance(template, dict) and isinstance(containers, list) and not containers:
        yield f"{where}.template.spec.containers", "needs the Ray container (KubeRay uses the "\
            "first)"


def ray_start_param_findings(
    params: dict[str, Any], group: dict[str, Any], where: str
) -> Iterator[Finding]:
    """`ray start` flags as strings: numbers must be numbers, resources said in one place."""
    for key in RAY_NUMBER_PARAMS:
        value = params.get(key)
        if isinstance(value, str) and not _is_number(value):
            yield f"{where}.{key}", f"{value!r} is not a number"
    if "labels" in params:
        yield f"{where}.labels", "is not supported; use the group's labels field"
    if group.get("resources") and any(params.get(key) for key in RAY_RESOURCE_PARAMS):
        yield f"{where}", "sets resources that the group's resources field also sets; use one"


def cluster_option_findings(cluster: dict[str, Any], where: str) -> Iterator[Finding]:
    """Autoscaler and authentication options KubeRay checks against each other."""
    idle = (cluster.get("autoscalerOptions") or {}).get("idleTimeoutSeconds")
    if isinstance(idle, int) and idle < 0:
        yield f"{where}.autoscalerOptions.idleTimeoutSeconds", f"{idle} must not be negative"
    if (cluster.get("authOptions") or {}).get("mode") == "token":
        version = _version(cluster.get("rayVersion"))
        if version is None or version < MIN_TOKEN_AUTH_RAY:
            yield f"{where}.rayVersion", (
                f"{cluster.get('rayVersion')!r}: authOptions.mode token needs rayVersion "
                "2.52.0 or later"
            )


def _autoscaling(cluster: Any) -> bool:
    return isinstance(cluster, dict) and bool(cluster.get("enableInTreeAutoscaling"))


def _dig(value: Any, path: tuple[str, ...]) -> Any:
    for key in path:
        value = value.get(key) if isinstance(value, dict) else None
    return value


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _version(text: Any) -> tuple[int, int] | None:
    parts = str(text).split(".")
    try:
        return int(parts[0]), int(parts[1])
    except (IndexError, ValueError):
        return None

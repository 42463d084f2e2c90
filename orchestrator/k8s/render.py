"""One experiment config -> a KubeRay RayJob (ray.io/v1) and the ConfigMap that embeds it.

The job runs `orchestrator launch` on the Ray head with the config mounted from the
ConfigMap, so the cluster trains exactly what the user validated locally. The pod sizes come
from the config's `ray` section; everything secret (the MLflow URI and credentials, object
store keys) comes from Secrets through `envFrom` and is never written into a manifest.
"""

from __future__ import annotations

import copy
import json
import math
import re
from dataclasses import dataclass
from typing import Any

import ray
import yaml

from orchestrator.config import DEFAULT_SAMPLES, ExperimentConfig
from orchestrator.errors import OrchestratorError
from orchestrator.run_files import RUN_NAME_ENV
from orchestrator.worker.background_validation import VALIDATION_RESOURCE

# Secrets the pods read with envFrom (created by the user, see k8s/README.md).
MLFLOW_SECRET = "rnn-orchestrator-mlflow"  # MLFLOW_TRACKING_URI, _USERNAME, _PASSWORD
STORAGE_SECRET = "rnn-orchestrator-storage"  # AWS_* keys for s3:// storage; optional
SHARED_PVC = "rnn-orchestrator-shared"  # ReadWriteMany volume for data and checkpoints
SHARED_MOUNT = "/mnt/shared"
CONFIG_MOUNT = "/home/ray/experiment"
CONFIG_FILE = "experiment.yaml"
DEFAULT_IMAGE = "rnn-orchestrator:0.1.0"
RAY_VERSION = ray.__version__
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
MAX_JOB_NAME = 40  # KubeRay appends suffixes to the cluster and pod names (63 chars max)


@dataclass(frozen=True)
class Profile:
    """Cluster-side choices the experiment config does not make: sizes, limits, placement."""

    name: str
    gpu: bool  # GPU worker nodes: nvidia.com/gpu limits, toleration and node selector
    autoscaling: bool  # Ray's in-tree autoscaler between minReplicas and maxReplicas
    head_cpu: int
    head_memory: str
    memory_per_worker: str
    backoff_limit: int  # RayJob retries; each resumes from the checkpoints in storage
    active_deadline_s: int
    ttl_after_finished_s: int


PROFILES: dict[str, Profile] = {
    "cpu-dev": Profile(
        name="cpu-dev", gpu=False, autoscaling=False, head_cpu=1, head_memory="4Gi",
        memory_per_worker="4Gi", backoff_limit=1, active_deadline_s=2 * 3600,
        ttl_after_finished_s=600,
    ),
    "gpu-multinode": Profile(
        name="gpu-multinode", gpu=True, autoscaling=True, head_cpu=2, head_memory="8Gi",
        memory_per_worker="32Gi", backoff_limit=3, active_deadline_s=24 * 3600,
        ttl_after_finished_s=3600,
    ),
}
# The image's user (k8s/Dockerfile: rayproject/ray's `ray`, uid 1000, group `users` 100).
# Numeric, so the kubelet can verify runAsNonRoot; fsGroup makes a fresh volume writable.
IMAGE_UID, IMAGE_GID = 1000, 100
POD_SECURITY = {
    "runAsNonRoot": True, "runAsUser": IMAGE_UID, "runAsGroup": IMAGE_GID,
    "fsGroup": IMAGE_GID, "fsGroupChangePolicy": "OnRootMismatch",
    "seccompProfile": {"type": "RuntimeDefault"},
}
# Ray needs no Linux capability and never escalates; KubeRay's injected containers (the
# autoscaler) get the same through autoscalerOptions.securityContext.
CONTAINER_SECURITY = {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}
GPU_TOLERATION = {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
GPU_NODE_SELECTOR = {"nvidia.com/gpu.present": "true"}


@dataclass(frozen=True)
class RenderOptions:
    profile: str = "cpu-dev"
    image: str = DEFAULT_IMAGE
    namespace: str | None = None
    # Ray Train checkpoints: a path on the shared PVC, or s3://bucket/prefix.
    storage_path: str = f"{SHARED_MOUNT}/runs"
    job_name: str | None = None  # default: the config's name, made a DNS label


def render(config: ExperimentConfig, options: RenderOptions) -> list[dict[str, Any]]:
    """The ConfigMap and RayJob for one experiment, as plain dicts ready for YAML."""
    profile = profile_named(options.profile)
    job_name = options.job_name or job_name_for(config.name)
    check_job_name(job_name)
    cluster_config = config_for_cluster(config, profile, options.storage_path)
    return [
        config_map(job_name, cluster_config, options.namespace),
        ray_job(job_name, cluster_config, profile, options),
    ]


def profile_named(name: str) -> Profile:
    if name not in PROFILES:
        raise OrchestratorError(
            f"unknown profile {name!r}; choose one of {', '.join(PROFILES)}"
        )
    return PROFILES[name]


def job_name_for(config_name: str) -> str:
    """The config's name as a Kubernetes name: lowercase, dashes, at most 40 chars."""
    name = re.sub(r"[^a-z0-9-]+", "-", config_name.lower()).strip("-")
    return name[:MAX_JOB_NAME].rstrip("-")


def check_job_name(name: str) -> None:
    if len(name) > MAX_JOB_NAME or not _DNS_LABEL.match(name):
        raise OrchestratorError(
            f"job name {name!r} must be at most {MAX_JOB_NAME} lowercase letters, digits "
            "and dashes, starting and ending with a letter or digit; pass --job-name"
        )


def config_for_cluster(
    config: ExperimentConfig, profile: Profile, storage_path: str
) -> ExperimentConfig:
    """The config as the head pod must see it: join the RayJob's cluster, keep data and
    checkpoints on shared storage, and take the tracking URI from the environment."""
    config = config.model_copy(deep=True)
    config.ray.address = "auto"
    config.ray.storage_path = storage_path
    if profile.gpu:
        config.ray.use_gpu = True
        config.ray.gpus_per_worker = max(config.ray.gpus_per_worker, 1.0)
    else:  # in this order: gpus_per_worker > 0 needs use_gpu
        config.ray.gpus_per_worker = 0.0
        config.ray.use_gpu = False
    if config.data.path is None:  # the built-in sample, generated on the shared volume
        config.data.sample = config.data.sample or DEFAULT_SAMPLES[config.task]
        config.data.path = f"data/sample-{config.data.sample}"
    config.data.path = _on_shared_volume(config.data.path)
    if config.train.init_from is not None:  # a checkpoint under the shared runs folder
        config.train.init_from = _on_shared_volume(config.train.init_from)
    # Never a URI in a manifest: the pods read MLFLOW_TRACKING_URI from the Secret.
    config.tracking.uri = None
    return config


def _on_shared_volume(path: str) -> str:
    """A relative local path as the pods see it: under the shared volume's mount."""
    if "://" in path or path.startswith(("pipe:", "/")):
        return path
    return f"{SHARED_MOUNT}/{path}"


def config_map(
    job_name: str, config: ExperimentConfig, namespace: str | None
) -> dict[str, Any]:
    text = yaml.safe_dump(config.model_dump(), sort_keys=False)
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": _metadata(f"{job_name}-config", job_name, namespace),
        "data": {CONFIG_FILE: text},
    }


def ray_job(
    job_name: str, config: ExperimentConfig, profile: Profile, options: RenderOptions
) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "entrypoint": f"orchestrator launch {CONFIG_MOUNT}/{CONFIG_FILE} --address auto",
        "shutdownAfterJobFinishes": True,
        "ttlSecondsAfterFinished": profile.ttl_after_finished_s,
        "backoffLimit": profile.backoff_limit,
        "activeDeadlineSeconds": profile.active_deadline_s,
        "rayClusterSpec": {
            "rayVersion": RAY_VERSION,
            # Ray 2.60 requires a token by default; KubeRay makes one and hands it out.
            "authOptions": {"mode": "token"},
            "enableInTreeAutoscaling": profile.autoscaling,
            "headGroupSpec": _head_group(job_name, profile, options.image,
                                         config.train.background_validation),
            "workerGroupSpecs": [_worker_group(job_name, config, profile, options.image)],
        },
    }
    if profile.autoscaling:
        spec["rayClusterSpec"]["autoscalerOptions"] = {
            "idleTimeoutSeconds": 300, "upscalingMode": "Default",
            "securityContext": copy.deepcopy(CONTAINER_SECURITY),
        }
    return {
        "apiVersion": "ray.io/v1",
        "kind": "RayJob",
        "metadata": _metadata(job_name, job_name, options.namespace),
        "spec": spec,
    }


def _head_group(job_name: str, profile: Profile, image: str,
                scores_checkpoints: bool) -> dict[str, Any]:
    """The head runs the driver (`orchestrator launch`) and no training worker; with
    train.background_validation it also offers the resource the scoring task asks for."""
    resources = {"cpu": str(profile.head_cpu), "memory": profile.head_memory}
    container = _container("ray-head", image, resources)
    container["ports"] = [
        {"containerPort": 6379, "name": "gcs"},
        {"containerPort": 8265, "name": "dashboard"},
        {"containerPort": 10001, "name": "client"},
    ]
    container["env"] = [{"name": RUN_NAME_ENV, "value": job_name}]
    container["volumeMounts"].append({"name": "experiment", "mountPath": CONFIG_MOUNT})
    volumes = _volumes()
    volumes.append({"name": "experiment", "configMap": {"name": f"{job_name}-config"}})
    params = {"num-cpus": "0", "dashboard-host": "0.0.0.0"}
    if scores_checkpoints:  # `ray start --resources` takes JSON, quoted for the shell
        params["resources"] = json.dumps(json.dumps({VALIDATION_RESOURCE: 1}))
    return {
        "rayStartParams": params,
        "template": {
            "metadata": {"labels": _labels(job_name)},
            "spec": {
                "securityContext": copy.deepcopy(POD_SECURITY),
                "containers": [container], "volumes": volumes,
            },
        },
    }


def _worker_group(
    job_name: str, config: ExperimentConfig, profile: Profile, image: str
) -> dict[str, Any]:
    """One pod per Ray Train worker, sized from ray.cpus_per_worker / gpus_per_worker."""
    workers = config.ray.num_workers
    resources: dict[str, str] = {
        "cpu": str(math.ceil(config.ray.cpus_per_worker)),
        "memory": profile.memory_per_worker,
    }
    if profile.gpu:
        resources["nvidia.com/gpu"] = str(math.ceil(config.ray.gpus_per_worker))
    pod_spec: dict[str, Any] = {
        "securityContext": copy.deepcopy(POD_SECURITY),
        "containers": [_container("ray-worker", image, resources)],
        "volumes": _volumes(),
    }
    if profile.gpu:
        pod_spec["tolerations"] = [dict(GPU_TOLERATION)]
        pod_spec["nodeSelector"] = dict(GPU_NODE_SELECTOR)
    return {
        "groupName": "gpu-workers" if profile.gpu else "cpu-workers",
        "replicas": workers,
        # Training needs every worker (an elastic run, ray.min_workers); the autoscaler may
        # release idle ones afterwards.
        "minReplicas": 0 if profile.autoscaling else (config.ray.min_workers or workers),
        "maxReplicas": workers,
        "rayStartParams": {},
        "template": {"metadata": {"labels": _labels(job_name)}, "spec": pod_spec},
    }


def _container(name: str, image: str, resources: dict[str, str]) -> dict[str, Any]:
    return {
        "name": name,
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "resources": {"requests": dict(resources), "limits": dict(resources)},
        "envFrom": [
            {"secretRef": {"name": MLFLOW_SECRET}},
            {"secretRef": {"name": STORAGE_SECRET, "optional": True}},
        ],
        "volumeMounts": [{"name": "shared", "mountPath": SHARED_MOUNT}],
        "securityContext": copy.deepcopy(CONTAINER_SECURITY),
    }


def _volumes() -> list[dict[str, Any]]:
    return [{"name": "shared", "persistentVolumeClaim": {"claimName": SHARED_PVC}}]


def _labels(job_name: str) -> dict[str, str]:
    return {"app.kubernetes.io/name": "rnn-orchestrator", "rnn-orchestrator/job": job_name}


def _metadata(name: str, job_name: str, namespace: str | None) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": name, "labels": _labels(job_name)}
    if namespace:
        metadata["namespace"] = namespace
    return metadata


class _BlockDumper(yaml.SafeDumper):
    """Multi-line strings (the embedded config) as readable `|` blocks."""


def _represent_str(dumper: yaml.SafeDumper, text: str) -> yaml.ScalarNode:
    style = "|" if "\n" in text else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", text, style=style)


_BlockDumper.add_representer(str, _represent_str)


def to_yaml(manifests: list[dict[str, Any]]) -> str:
    """Multi-document YAML in the order given (the ConfigMap before the job that mounts it)."""
    return yaml.dump_all(
        manifests, Dumper=_BlockDumper, sort_keys=False, explicit_start=True, width=100
    )

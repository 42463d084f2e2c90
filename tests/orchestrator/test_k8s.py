"""`orchestrator k8s`: rendered RayJobs and the manifests in k8s/ are what a cluster accepts.

Custom resources are checked against the KubeRay v1.7.0 CRDs in ../shared/kuberay-crds
(defaults applied, unknown fields rejected); core objects against Kubernetes' own schemas.
"""

from __future__ import annotations

import argparse
import copy
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import ray
import yaml

from orchestrator.cli import k8s as k8s_door
from orchestrator.config import ExperimentConfig, load_config
from orchestrator.errors import OrchestratorError
from orchestrator.k8s.render import PROFILES, RenderOptions, config_for_cluster, render
from orchestrator.k8s.validate import load_documents, problems

REPO = Path(__file__).resolve().parents[2]
K8S = REPO / "k8s"
CRDS = REPO.parent / "shared" / "kuberay-crds"
CONFIGS = sorted((REPO / "configs").glob("*.yaml"))
KUSTOMIZE_DIRS = ["overlays/cpu-dev", "overlays/gpu-multinode", "raycluster", "mlflow", "storage"]

needs_crds = pytest.mark.skipif(
    not (CRDS / "ray.io_rayjobs.yaml").is_file(),
    reason=f"the KubeRay CRDs are not at {CRDS} (the shared/ folder beside the checkout)",
)


def _kustomize_skip_reason() -> str | None:
    if shutil.which("kubectl") is None:
        return "kubectl is not installed (.ci/run installs Debian's kubernetes-client)"
    version = subprocess.run(["kubectl", "version", "--client"], capture_output=True,
                             text=True, check=False).stdout
    found = re.search(r"Kustomize Version: v(\d+)", version)
    if found is None or int(found.group(1)) < 4:
        return f"kubectl's kustomize is older than v4 (`kubectl version --client`: {version!r})"
    return None


needs_kustomize = pytest.mark.skipif(
    _kustomize_skip_reason() is not None, reason=str(_kustomize_skip_reason())
)


def kustomize(folder: str) -> list[dict[str, Any]]:
    out = subprocess.run(["kubectl", "kustomize", str(K8S / folder)], capture_output=True,
                         text=True, check=True).stdout
    return [doc for doc in yaml.safe_load_all(out) if doc]


def by_kind(manifests: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    [found] = [m for m in manifests if m["kind"] == kind]
    return found


def render_config(path: Path | str | None, *overrides: str, **options: Any) -> list[dict]:
    return render(load_config(path, list(overrides)), RenderOptions(**options))


def k8s_cli(*argv: str) -> int:
    """`orchestrator k8s ...` through the same argparse wiring cli.py uses."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--debug", action="store_true")
    parser = argparse.ArgumentParser(parents=[common])
    k8s_door.register(parser.add_subparsers(), common)
    args = parser.parse_args(["k8s", *argv])
    return args.handler(args)


def k8s_folder_manifests() -> list[tuple[str, dict[str, Any]]]:
    """Every Kubernetes object written out in k8s/ (not kustomizations, patches or configs)."""
    found = []
    for path in sorted(K8S.rglob("*.yaml")):
        for doc in load_documents(path):
            if isinstance(doc, dict) and "apiVersion" in doc and doc.get("kind") != "Kustomization":
                found.append((str(path.relative_to(K8S)), doc))
    return found


# ---- rendering ------------------------------------------------------------------------


@needs_crds
@pytest.mark.parametrize("profile", sorted(PROFILES))
@pytest.mark.parametrize("config", CONFIGS, ids=lambda path: path.stem)
def test_render_of_every_shipped_config_validates(config: Path, profile: str):
    manifests = render_config(config, profile=profile)
    assert [m["kind"] for m in manifests] == ["ConfigMap", "RayJob"]
    for manifest in manifests:
        assert problems(manifest, CRDS) == []


def test_rayjob_is_sized_from_the_ray_section():
    config_map, job = render_config(
        None, "ray.num_workers=4", "ray.cpus_per_worker=3", "ray.use_gpu=true",
        "ray.gpus_per_worker=2", profile="gpu-multinode",
    )
    spec = job["spec"]
    [workers] = spec["rayClusterSpec"]["workerGroupSpecs"]
    assert (workers["replicas"], workers["minReplicas"], workers["maxReplicas"]) == (4, 0, 4)
    pod = workers["template"]["spec"]
    limits = pod["containers"][0]["resources"]["limits"]
    assert (limits["cpu"], limits["nvidia.com/gpu"]) == ("3", "2")
    assert pod["tolerations"][0]["key"] == "nvidia.com/gpu"
    assert pod["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
    assert spec["rayClusterSpec"]["enableInTreeAutoscaling"] is True
    assert spec["shutdownAfterJobFinishes"] is True
    assert spec["backoffLimit"] == 3 and spec["activeDeadlineSeconds"] > 0
    assert spec["ttlSecondsAfterFinished"] > 0
    assert spec["rayClusterSpec"]["rayVersion"] == ray.__version__
    # The head runs only the driver; every training worker gets its own pod.
    head = spec["rayClusterSpec"]["headGroupSpec"]
    assert head["rayStartParams"]["num-cpus"] == "0"


@needs_crds
def test_background_validation_gets_a_head_that_offers_the_scoring_resource():
    config_map, job = render_config(REPO / "configs" / "multi30k_de_en_cpu.yaml",
                                    "train.background_validation=true")
    head = job["spec"]["rayClusterSpec"]["headGroupSpec"]
    # the value KubeRay passes on to `ray start --resources`, quoted for the shell
    assert head["rayStartParams"]["resources"] == '"{\\"background_validation\\": 1}"'
    assert problems(job, CRDS) == []
    _, plain = render_config(REPO / "configs" / "multi30k_de_en_cpu.yaml")
    assert "resources" not in plain["spec"]["rayClusterSpec"]["headGroupSpec"]["rayStartParams"]


def test_cpu_dev_has_no_gpus_and_a_fixed_size():
    _, job = render_config(None, "ray.num_workers=3", profile="cpu-dev")
    [workers] = job["spec"]["rayClusterSpec"]["workerGroupSpecs"]
    assert (workers["replicas"], workers["minReplicas"], workers["maxReplicas"]) == (3, 3, 3)
    assert "nvidia.com/gpu" not in workers["template"]["spec"]["containers"][0]["resources"]
    assert "tolerations" not in workers["template"]["spec"]


def test_embedded_config_is_the_validated_config_as_the_cluster_runs_it():
    config_map, job = render_config(REPO / "configs" / "ptb_word_lstm.yaml",
                                    "model.cell=gru", storage_path="s3://bucket/runs")
    embedded = ExperimentConfig.model_validate(
        yaml.safe_load(config_map["data"]["experiment.yaml"])
    )
    assert embedded.model.cell == "gru" and embedded.name == "ptb-word-lstm-small"
    assert embedded.ray.address == "auto"  # join the RayJob's cluster, not a local one
    assert embedded.ray.storage_path == "s3://bucket/runs"
    assert embedded.data.path == "/mnt/shared/data/ptb"
    assert job["spec"]["entrypoint"] == (
        "orchestrator launch /home/ray/experiment/experiment.yaml --address auto"
    )
    head = job["spec"]["rayClusterSpec"]["headGroupSpec"]["template"]["spec"]
    assert head["volumes"][-1]["configMap"]["name"] == config_map["metadata"]["name"]


def test_a_relative_init_from_checkpoint_is_read_from_the_shared_volume():
    config_map, _ = render_config(REPO / "configs" / "flickr8k_efficientnet_cpu.yaml",
                                  "train.objective=scst",
                                  "train.init_from=runs/flickr8k/checkpoint_000019")
    embedded = yaml.safe_load(config_map["data"]["experiment.yaml"])
    assert embedded["train"]["init_from"] == "/mnt/shared/runs/flickr8k/checkpoint_000019"


def test_tracking_uri_and_credentials_come_from_a_secret_not_the_manifest():
    # A URI with a password is refused when the config loads; the host stays out too.
    manifests = render_config(None, "tracking.uri=http://mlflow.internal:5000")
    text = yaml.safe_dump_all(manifests)
    assert "mlflow.internal" not in text
    cluster = manifests[1]["spec"]["rayClusterSpec"]
    pods = [cluster["headGroupSpec"]] + cluster["workerGroupSpecs"]
    for group in pods:
        [container] = group["template"]["spec"]["containers"]
        secrets = [source["secretRef"]["name"] for source in container["envFrom"]]
        assert "rnn-orchestrator-mlflow" in secrets


def test_restarted_job_keeps_its_run_name_and_storage_path():
    """Retries (backoffLimit) re-run the same entrypoint: the run name must not change."""
    first = render_config(None)[1]
    second = render_config(None)[1]
    assert first == second
    head = first["spec"]["rayClusterSpec"]["headGroupSpec"]["template"]["spec"]
    env = {item["name"]: item["value"] for item in head["containers"][0]["env"]}
    assert env["ORCHESTRATOR_RUN_NAME"] == "quickstart-char-lstm"


def test_cli_render_writes_one_file_per_job(tmp_path: Path, capsys):
    assert k8s_cli("render", str(REPO / "configs" / "quickstart.yaml"), "ray.num_workers=3",
                   "--profile", "gpu-multinode", "-o", str(tmp_path)) == 0
    written = load_documents(tmp_path / "quickstart-char-lstm.yaml")
    assert [doc["kind"] for doc in written] == ["ConfigMap", "RayJob"]
    assert written[1]["spec"]["rayClusterSpec"]["workerGroupSpecs"][0]["replicas"] == 3
    assert "kubectl apply -f" in capsys.readouterr().out


def test_cli_render_prints_yaml_without_output_folder(capsys):
    assert k8s_cli("render", str(REPO / "configs" / "quickstart.yaml")) == 0
    kinds = [doc["kind"] for doc in yaml.safe_load_all(capsys.readouterr().out)]
    assert kinds == ["ConfigMap", "RayJob"]


@pytest.mark.parametrize(("argv", "message"), [
    (["configs/quickstart.yaml", "ray.num_wokers=2"], r"did you mean ray\.num_workers"),
    (["configs/quickstart.yaml", "extra.yaml"], r"not a key=value override"),
    (["configs/quickstart.yaml", "--job-name", "Bad_Name"], r"job name 'Bad_Name' must be"),
    (["configs/missing.yaml"], r"does not exist"),
])
def test_cli_render_names_what_to_fix(argv: list[str], message: str, monkeypatch):
    monkeypatch.chdir(REPO)
    with pytest.raises(OrchestratorError, match=message):
        k8s_cli("render", *argv)


def test_submit_reports_kubectl_errors_in_one_line(monkeypatch):
    if shutil.which("kubectl") is None:
        pytest.skip("kubectl is not installed")
    monkeypatch.setenv("KUBECONFIG", "/nonexistent/kubeconfig")
    with pytest.raises(OrchestratorError, match=r"`kubectl apply -f -` failed: .*refused"):
        k8s_cli("submit", str(REPO / "configs" / "quickstart.yaml"))


def test_submit_without_kubectl_says_how_to_get_it(monkeypatch, tmp_path: Path):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(OrchestratorError, match=r"kubectl is not on PATH"):
        k8s_cli("status", "quickstart-char-lstm")


# ---- the validator rejects what a cluster would reject ----------------------------------


def _broken(change) -> dict[str, Any]:
    job = copy.deepcopy(render_config(None, profile="gpu-multinode")[1])
    change(job["spec"])
    return job


def _misspell(spec):
    spec["rayClusterSpec"]["workerGroupSpecs"][0]["replcas"] = 2


def _string_for_integer(spec):
    spec["backoffLimit"] = "3"


def _bad_quantity(spec):
    worker = spec["rayClusterSpec"]["workerGroupSpecs"][0]["template"]["spec"]
    worker["containers"][0]["resources"]["limits"]["memory"] = "32 GB"


def _no_group_name(spec):
    del spec["rayClusterSpec"]["workerGroupSpecs"][0]["groupName"]


def _unknown_container_field(spec):
    spec["rayClusterSpec"]["headGroupSpec"]["template"]["spec"]["containers"][0]["imag"] = "x"


@needs_crds
@pytest.mark.parametrize(("change", "expected"), [
    (_misspell, r"workerGroupSpecs\[0\]: Additional properties .*'replcas' was unexpected"),
    (_string_for_integer, r"spec\.backoffLimit: '3' is not of type 'integer'"),
    (_bad_quantity, r"limits\.memory: '32 GB' does not match"),
    (_no_group_name, r"workerGroupSpecs\[0\]: 'groupName' is a required property"),
    (_unknown_container_field, r"containers\[0\]: Additional properties .*'imag'"),
])
def test_broken_rayjobs_are_rejected(change, expected: str):
    found = problems(_broken(change), CRDS)
    assert any(re.search(expected, text) for text in found), found


@needs_crds
def test_crd_defaults_are_applied_before_validation():
    # submissionMode and ttlSecondsAfterFinished have defaults; leaving them out is fine.
    job = _broken(lambda spec: spec.pop("ttlSecondsAfterFinished"))
    assert problems(job, CRDS) == []


def _deployment() -> dict[str, Any]:
    [deployment] = [doc for _, doc in k8s_folder_manifests() if doc["kind"] == "Deployment"]
    return copy.deepcopy(deployment)


@pytest.mark.parametrize(("change", "expected"), [
    (lambda d: d["spec"].update(replcas=1), r"'replcas' was unexpected"),
    (lambda d: d["spec"].update(replicas="1"), r"spec\.replicas: '1' is not of type 'integer'"),
    (lambda d: d["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]
     .update(memory="2 GB"), r"limits\.memory: '2 GB' is not a quantity"),
    (lambda d: d["spec"]["template"]["spec"]["containers"][0].pop("name"),
     r"'name' is a required property"),
])
def test_broken_core_objects_are_rejected(change, expected: str):
    deployment = _deployment()
    change(deployment)
    found = problems(deployment, None)
    assert any(re.search(expected, text) for text in found), found


def test_custom_resources_without_their_crds_are_unknown_kinds():
    assert "unknown kind" in " ".join(problems(render_config(None)[1], None))


# ---- the k8s/ folder --------------------------------------------------------------------


@needs_crds
@pytest.mark.parametrize("name,manifest", k8s_folder_manifests(),
                         ids=[f"{p}:{d['kind']}" for p, d in k8s_folder_manifests()])
def test_every_manifest_in_k8s_validates(name: str, manifest: dict[str, Any]):
    assert problems(manifest, CRDS) == []


def test_base_rayjob_is_the_render_of_the_quickstart():
    """k8s/base/rayjob.yaml is generated; this keeps it from drifting from `k8s render`."""
    [base] = load_documents(K8S / "base" / "rayjob.yaml")
    assert base == render_config(REPO / "configs" / "quickstart.yaml")[1], (
        "k8s/base/rayjob.yaml differs from `orchestrator k8s render configs/quickstart.yaml`; "
        "render again and copy the RayJob there"
    )


@pytest.mark.parametrize("profile", sorted(PROFILES))
def test_overlay_configs_equal_the_rendered_configs(profile: str):
    folder = "base" if profile == "cpu-dev" else f"overlays/{profile}"
    quickstart = load_config(REPO / "configs" / "quickstart.yaml")
    expected = config_for_cluster(quickstart, PROFILES[profile], "/mnt/shared/runs")
    assert load_config(K8S / folder / "experiment.yaml") == expected


def test_dockerfile_base_image_and_pins_match_the_installed_ray():
    dockerfile = (K8S / "Dockerfile").read_text()
    assert f"FROM rayproject/ray:{ray.__version__}-py311-gpu" in dockerfile
    assert f"ray=={ray.__version__}" in (K8S / "constraints.txt").read_text().splitlines()


@needs_kustomize
@pytest.mark.parametrize("folder", KUSTOMIZE_DIRS)
def test_kustomize_renders_and_validates(folder: str):
    manifests = kustomize(folder)
    assert manifests
    if CRDS.is_dir():
        for manifest in manifests:
            assert problems(manifest, CRDS) == []


@needs_kustomize
@pytest.mark.parametrize("profile", sorted(PROFILES))
def test_overlay_equals_render_with_the_same_profile(profile: str):
    rendered = render_config(REPO / "configs" / "quickstart.yaml", profile=profile)
    overlay = kustomize(f"overlays/{profile}")
    assert by_kind(overlay, "RayJob") == rendered[1]
    embedded = yaml.safe_load(by_kind(overlay, "ConfigMap")["data"]["experiment.yaml"])
    assert ExperimentConfig.model_validate(embedded) == ExperimentConfig.model_validate(
        yaml.safe_load(rendered[0]["data"]["experiment.yaml"])
    )

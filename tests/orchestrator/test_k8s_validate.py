"""`orchestrator k8s validate`: every kind of hand-made mistake is one line naming the file,
the object and the field; everything `k8s render` makes passes; missing CRDs fail loudly.

Broken manifests are built in code from a rendered RayJob (one mistake each), written to a
file and checked through the CLI, as a person would run it. Those that need the KubeRay
v1.7.0 CRDs (../shared/kuberay-crds) skip when they are absent, like test_k8s.py.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from orchestrator.config import load_config
from orchestrator.errors import OrchestratorError
from orchestrator.k8s.check import CRDS_ENV
from orchestrator.k8s.render import PROFILES, RenderOptions, render, to_yaml
from tests.orchestrator.test_k8s import CONFIGS, CRDS, REPO, k8s_cli, needs_crds


@pytest.fixture(autouse=True)
def _no_crds_from_the_environment(monkeypatch):
    """Each test says where its CRDs come from; a developer's variable must not leak in."""
    monkeypatch.delenv(CRDS_ENV, raising=False)


def rendered(config: Path | None = None, profile: str = "gpu-multinode", **options: Any):
    return render(load_config(config, []), RenderOptions(profile=profile, **options))


def write(tmp_path: Path, name: str, manifests: list[dict[str, Any]]) -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(to_yaml(manifests))
    return path


# ---- one mistake per manifest -------------------------------------------------------------

Change = Callable[[dict[str, Any]], None]


def _spec(job):
    return job["spec"]


def _cluster(job):
    return job["spec"]["rayClusterSpec"]


def _workers(job):
    return job["spec"]["rayClusterSpec"]["workerGroupSpecs"][0]


def _worker_pod(job):
    return _workers(job)["template"]["spec"]


def _worker(job):
    return _worker_pod(job)["containers"][0]


def _head(job):
    return job["spec"]["rayClusterSpec"]["headGroupSpec"]["template"]["spec"]["containers"][0]


def _rules(*rules):
    return lambda job: _spec(job).update(shutdownAfterJobFinishes=False,
                                         ttlSecondsAfterFinished=0,
                                         deletionStrategy={"deletionRules": list(rules)})


def _set_gpus(requests, limits):
    def change(job):
        _worker(job)["resources"]["requests"]["nvidia.com/gpu"] = requests
        _worker(job)["resources"]["limits"]["nvidia.com/gpu"] = limits
    return change


def _rename_gpu(name):
    def change(job):
        for section in ("requests", "limits"):
            _worker(job)["resources"][section][name] = (
                _worker(job)["resources"][section].pop("nvidia.com/gpu"))
    return change


# (id, change, regex the line must match after "FILE: RayJob/NAME: ")
BROKEN: list[tuple[str, Change, str]] = [
    ("misspelled-field", lambda j: _workers(j).update(replcas=2),
     r"workerGroupSpecs\[0\]: Additional properties .*'replcas'"),
    ("string-for-integer", lambda j: _spec(j).update(backoffLimit="3"),
     r"spec\.backoffLimit: '3' is not of type 'integer'"),
    ("bad-quantity", lambda j: _worker(j)["resources"]["limits"].update(memory="32 GB"),
     r"limits\.memory: '32 GB' does not match"),
    ("submission-mode", lambda j: _spec(j).update(submissionMode="K8sJob"),
     r"spec\.submissionMode: 'K8sJob' is not valid \(did you mean 'K8sJobMode'\?\)"),
    ("deletion-policy-enum", lambda j: _spec(j).update(deletionStrategy={
        "onSuccess": {"policy": "DeleteAll"}, "onFailure": {"policy": "DeleteCluster"}}),
     r"spec\.deletionStrategy\.onSuccess\.policy: 'DeleteAll' is not one of"),
    ("on-success-without-on-failure", lambda j: _spec(j).update(
        deletionStrategy={"onSuccess": {"policy": "DeleteCluster"}}),
     r"spec\.deletionStrategy: deletionStrategy requires either BOTH onSuccess and onFailure"),
    ("legacy-and-rules", lambda j: _spec(j).update(deletionStrategy={
        "onSuccess": {"policy": "DeleteCluster"}, "onFailure": {"policy": "DeleteCluster"},
        "deletionRules": [{"condition": {"jobStatus": "FAILED"}, "policy": "DeleteCluster"}]}),
     r"spec\.deletionStrategy: legacy policies \(onSuccess/onFailure\) and deletionRules"),
    ("rule-with-two-conditions", _rules({"policy": "DeleteCluster", "condition": {
        "jobStatus": "FAILED", "jobDeploymentStatus": "Failed"}}),
     r"deletionRules\[0\]\.condition: JobStatus and JobDeploymentStatus cannot be used"),
    ("rules-with-shutdown", lambda j: _spec(j).update(deletionStrategy={"deletionRules": [
        {"condition": {"jobStatus": "FAILED"}, "policy": "DeleteCluster"}]}),
     r"spec\.deletionStrategy\.deletionRules: cannot be used with shutdownAfterJobFinishes"),
    ("rule-ttl-order", _rules(
        {"condition": {"jobStatus": "SUCCEEDED", "ttlSeconds": 60}, "policy": "DeleteCluster"},
        {"condition": {"jobStatus": "SUCCEEDED", "ttlSeconds": 10}, "policy": "DeleteSelf"}),
     r"deletionRules: when jobStatus is SUCCEEDED: DeleteSelf ttlSeconds 10 must be at least"),
    ("managed-by", lambda j: _spec(j).update(managedBy="kueue"),
     r"spec\.managedBy: the managedBy field value must be either"),
    ("negative-ttl", lambda j: _spec(j).update(ttlSecondsAfterFinished=-5),
     r"spec\.ttlSecondsAfterFinished: -5 must be at least 0"),
    ("zero-deadline", lambda j: _spec(j).update(activeDeadlineSeconds=0),
     r"spec\.activeDeadlineSeconds: 0 must be at least 1"),
    ("negative-backoff", lambda j: _spec(j).update(backoffLimit=-1),
     r"spec\.backoffLimit: -1 must be at least 0"),
    ("suspend-without-shutdown", lambda j: _spec(j).update(
        suspend=True, shutdownAfterJobFinishes=False, ttlSecondsAfterFinished=0),
     r"spec\.suspend: true needs shutdownAfterJobFinishes: true"),
    ("metadata-typo", lambda j: j["metadata"].update(lables={"team": "nlp"}),
     r"metadata\.lables: unknown field 'lables' \(did you mean 'labels'\?\)"),
    ("label-value", lambda j: j["metadata"]["labels"].update(team="nlp team"),
     r"metadata\.labels\.team: value 'nlp team' is not a valid label value"),
    ("annotation-key", lambda j: j["metadata"].update(annotations={"owner email": "a@b"}),
     r"metadata\.annotations\.owner email: key 'owner email' is not valid"),
    ("name-syntax", lambda j: j["metadata"].update(name="Quickstart_LSTM"),
     r"metadata\.name: 'Quickstart_LSTM' is not a valid RayJob name"),
    ("namespace-syntax", lambda j: j["metadata"].update(namespace="ML_Team"),
     r"metadata\.namespace: 'ML_Team' is not a valid namespace"),
    ("toleration-exists-with-value", lambda j: _worker_pod(j)["tolerations"][0].update(
        value="true"), r"tolerations\[0\]\.value: 'true' must be empty when operator is Exists"),
    ("toleration-effect", lambda j: _worker_pod(j)["tolerations"][0].update(effect="NoSchedul"),
     r"tolerations\[0\]\.effect: 'NoSchedul' is not valid \(did you mean 'NoSchedule'\?\)"),
    ("gpu-without-domain", _rename_gpu("nvidia/gpu"),
     r"limits\.nvidia/gpu: resource 'nvidia/gpu' .*did you mean 'nvidia.com/gpu'"),
    ("gpu-bare", _rename_gpu("gpu"),
     r"requests\.gpu: resource 'gpu' .*did you mean 'nvidia.com/gpu'"),
    ("gpu-plural", _rename_gpu("nvidia.com/gpus"),
     r"limits\.nvidia\.com/gpus: .*no known device plugin \(did you mean 'nvidia.com/gpu'\?\)"),
    ("gpu-requests-not-limits", _set_gpus("1", "2"),
     r"requests\.nvidia\.com/gpu: '1' differs from the limit '2'"),
    ("fractional-gpu", _set_gpus("0.5", "0.5"),
     r"limits\.nvidia\.com/gpu: '0\.5' is fractional"),
    ("runtime-env-not-yaml", lambda j: _spec(j).update(runtimeEnvYAML="pip: [torch\n"),
     r"spec\.runtimeEnvYAML: is not valid YAML"),
    ("runtime-env-not-mapping", lambda j: _spec(j).update(runtimeEnvYAML="- torch\n"),
     r"spec\.runtimeEnvYAML: must be a YAML mapping"),
    ("empty-entrypoint", lambda j: _spec(j).update(entrypoint="  "),
     r"spec\.entrypoint: '  ' is empty"),
    ("min-above-max", lambda j: _workers(j).update(minReplicas=5),
     r"workerGroupSpecs\[0\]\.minReplicas: 5 is more than maxReplicas 2"),
    ("replicas-outside", lambda j: _workers(j).update(replicas=7),
     r"workerGroupSpecs\[0\]\.replicas: 7 is outside \[minReplicas 0, maxReplicas 2\]"),
    ("image-latest", lambda j: _worker(j).update(image="rnn-orchestrator:latest"),
     r"containers\[0\]\.image: 'rnn-orchestrator:latest' has no pinned version"),
    ("image-missing", lambda j: _head(j).pop("image"),
     r"headGroupSpec\.template\.spec\.containers\[0\]\.image: is required"),
    ("pull-policy", lambda j: _worker(j).update(imagePullPolicy="IfNotPresnt"),
     r"imagePullPolicy: 'IfNotPresnt' is not valid \(did you mean 'IfNotPresent'\?\)"),
    ("mount-without-volume", lambda j: _worker(j)["volumeMounts"].append(
        {"name": "scratch", "mountPath": "/scratch"}),
     r"volumeMounts\[1\]\.name: 'scratch' is not a volume of this pod"),
    ("request-above-limit", lambda j: _worker(j)["resources"]["requests"].update(memory="64Gi"),
     r"requests\.memory: '64Gi' is more than the limit '32Gi'"),
    ("port-name", lambda j: _head(j)["ports"][1].update(name="ray-dashboard-http"),
     r"ports\[1\]\.name: 'ray-dashboard-http' is not a valid port name"),
    ("token-auth-old-ray", lambda j: _cluster(j).update(rayVersion="2.40.0"),
     r"rayClusterSpec\.rayVersion: '2\.40\.0': authOptions\.mode token needs rayVersion"),
    ("root-with-run-as-non-root", lambda j: _worker_pod(j)["securityContext"].update(
        runAsUser=0), r"template\.spec\.securityContext\.runAsUser: 0 is root"),
    ("duplicate-group", lambda j: _cluster(j)["workerGroupSpecs"].append(
        copy.deepcopy(_workers(j))),
     r"workerGroupSpecs\[1\]\.groupName: 'gpu-workers' is used twice"),
    ("ray-start-number", lambda j: _workers(j)["rayStartParams"].update({"num-cpus": "two"}),
     r"rayStartParams\.num-cpus: 'two' is not a number"),
    ("service-type", lambda j: _cluster(j)["headGroupSpec"].update(serviceType="Loadbalancer"),
     r"headGroupSpec\.serviceType: 'Loadbalancer' is not valid \(did you mean 'LoadBalancer'"),
    ("node-selector-unquoted", lambda j: _worker_pod(j)["nodeSelector"].update(
        {"nvidia.com/gpu.present": True}), r"nodeSelector\.nvidia\.com/gpu\.present: value True"),
    ("env-value-and-value-from", lambda j: _head(j)["env"][0].update(
        valueFrom={"secretKeyRef": {"name": "s", "key": "k"}}),
     r"containers\[0\]\.env\[0\]: 'ORCHESTRATOR_RUN_NAME' sets both value and valueFrom"),
    ("no-cluster", lambda j: _spec(j).pop("rayClusterSpec"),
     r"spec\.rayClusterSpec: is required unless clusterSelector"),
]


def _broken(change: Change) -> dict[str, Any]:
    job = copy.deepcopy(rendered()[1])
    change(job)
    return job


def test_there_are_at_least_25_kinds_of_mistake():
    assert len(BROKEN) >= 25 and len({name for name, _, _ in BROKEN}) == len(BROKEN)


@needs_crds
@pytest.mark.parametrize(("name", "change", "expected"), BROKEN, ids=[b[0] for b in BROKEN])
def test_each_broken_rayjob_is_one_line_naming_file_object_and_field(
    name: str, change: Change, expected: str, tmp_path: Path, capsys
):
    path = write(tmp_path, name, [_broken(change)])
    assert k8s_cli("validate", str(path), "--crds", str(CRDS)) == 2
    captured = capsys.readouterr()
    lines = captured.err.splitlines()
    assert lines and captured.out == ""
    prefix = f"{path}: RayJob/"
    assert all(line.startswith(prefix) for line in lines), lines
    assert any(re.search(expected, line) for line in lines), lines


@needs_crds
def test_all_broken_manifests_in_one_run_are_all_rejected(tmp_path: Path, capsys):
    paths = [write(tmp_path, name, [_broken(change)]) for name, change, _ in BROKEN]
    assert k8s_cli("validate", *map(str, paths), "--crds", str(CRDS)) == 2
    lines = capsys.readouterr().err.splitlines()
    rejected = {path for path in paths if any(line.startswith(f"{path}: ") for line in lines)}
    assert rejected == set(paths)


def test_broken_core_object_is_named_without_crds(tmp_path: Path, capsys):
    """Deployments and other core kinds need no CRDs; their pod templates get the same rules."""
    [deployment] = [doc for doc in yaml.safe_load_all(
        (REPO / "k8s" / "mlflow" / "mlflow-server.yaml").read_text()) if doc["kind"] ==
        "Deployment"]
    deployment["spec"]["template"]["spec"]["tolerations"] = [
        {"key": "dedicated", "operator": "Exist", "effect": "NoSchedule"}]
    path = write(tmp_path, "deployment", [deployment])
    assert k8s_cli("validate", str(path)) == 2
    [line] = capsys.readouterr().err.splitlines()
    assert line.startswith(f"{path}: Deployment/mlflow: spec.template.spec.tolerations[0]"
                           ".operator: 'Exist' is not valid (did you mean 'Exists'?)")


# ---- what is valid passes ------------------------------------------------------------------


@needs_crds
def test_every_rendered_profile_of_every_config_is_valid(tmp_path: Path, capsys):
    paths = [
        write(tmp_path, f"{config.stem}-{profile}", rendered(config, profile))
        for config in CONFIGS for profile in sorted(PROFILES)
    ]
    assert k8s_cli("validate", *map(str, paths), "--crds", str(CRDS)) == 0, (
        capsys.readouterr().err)
    [summary] = capsys.readouterr().out.splitlines()
    assert summary.startswith(f"{2 * len(paths)} objects in {len(paths)} files are valid")


@needs_crds
def test_the_k8s_folder_is_valid(monkeypatch, capsys):
    monkeypatch.setenv(CRDS_ENV, str(CRDS))
    files = [path for path in sorted((REPO / "k8s").rglob("*.yaml"))
             if path.name != "kustomization.yaml" and "apiVersion" in path.read_text()
             and path.parent.name != "gpu-multinode"]
    assert k8s_cli("validate", *map(str, files)) == 0, capsys.readouterr().err


@needs_crds
def test_crds_from_kubectl_get_as_one_list(tmp_path: Path, capsys):
    """`kubectl get crd rayjobs.ray.io rayclusters.ray.io -o yaml` writes a List: accepted."""
    items = [yaml.safe_load((CRDS / name).read_text())
             for name in ("ray.io_rayjobs.yaml", "ray.io_rayclusters.yaml")]
    crds = tmp_path / "crds"
    crds.mkdir()
    (crds / "kuberay.yaml").write_text(yaml.safe_dump({"apiVersion": "v1", "kind": "List",
                                                      "items": items}))
    path = write(tmp_path, "job", rendered())
    assert k8s_cli("validate", str(path), "--crds", str(crds)) == 0, capsys.readouterr().err


# ---- what cannot be checked is said, never passed ----------------------------------------


def test_validate_without_crds_fails_saying_so(tmp_path: Path, capsys):
    path = write(tmp_path, "job", rendered())
    assert k8s_cli("validate", str(path)) == 2
    [line] = capsys.readouterr().err.splitlines()
    assert line.startswith(f"{path}: RayJob/quickstart-char-lstm: ")
    assert "the KubeRay CRDs are not available" in line and "--crds DIR" in line
    assert CRDS_ENV in line


def test_a_crds_folder_without_crds_is_an_error(tmp_path: Path):
    path = write(tmp_path, "job", rendered())
    with pytest.raises(OrchestratorError, match=r"--crds .* holds no CustomResourceDefinition"):
        k8s_cli("validate", str(path), "--crds", str(tmp_path))


def test_invalid_yaml_is_named_with_its_line(tmp_path: Path, capsys):
    path = tmp_path / "edited.yaml"
    path.write_text("apiVersion: ray.io/v1\nkind: RayJob\nmetadata:\n  name: x\n"
                    "spec:\n  entrypoint: [python\n  backoffLimit: 1\n")
    assert k8s_cli("validate", str(path)) == 2
    [line] = capsys.readouterr().err.splitlines()
    assert re.match(rf"{re.escape(str(path))}:7:\d+: not valid YAML: ", line), line


def test_a_missing_file_is_one_line(tmp_path: Path, capsys):
    assert k8s_cli("validate", str(tmp_path / "nope.yaml")) == 2
    [line] = capsys.readouterr().err.splitlines()
    assert line.startswith(f"{tmp_path / 'nope.yaml'}: cannot be read")


# ---- render and submit check what they make ----------------------------------------------


def test_render_without_crds_says_the_rayjob_was_not_checked(capsys):
    assert k8s_cli("render", str(REPO / "configs" / "quickstart.yaml")) == 0
    captured = capsys.readouterr()
    [note] = captured.err.splitlines()
    assert "RayJob was not checked against the KubeRay CRDs" in note and "--crds" in note
    assert [doc["kind"] for doc in yaml.safe_load_all(captured.out)] == ["ConfigMap", "RayJob"]


@needs_crds
def test_render_with_crds_checks_silently(monkeypatch, capsys):
    monkeypatch.setenv(CRDS_ENV, str(CRDS))
    assert k8s_cli("render", str(REPO / "configs" / "quickstart.yaml")) == 0
    assert capsys.readouterr().err == ""


@needs_crds
def test_render_refuses_what_it_would_write_wrong(tmp_path: Path):
    with pytest.raises(OrchestratorError, match=r"rendered manifests are not valid: "
                       r"RayJob/quickstart-char-lstm: .*image: 'rnn:latest' has no pinned"):
        k8s_cli("render", str(REPO / "configs" / "quickstart.yaml"), "--image", "rnn:latest",
                "--crds", str(CRDS), "-o", str(tmp_path))
    assert list(tmp_path.iterdir()) == []


def test_submit_checks_before_kubectl_runs(monkeypatch, tmp_path: Path):
    """A job that would fail on the cluster never reaches kubectl (here: not even on PATH)."""
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(OrchestratorError, match=r"not valid: .*image: 'rnn' has no pinned"):
        k8s_cli("submit", str(REPO / "configs" / "quickstart.yaml"), "--image", "rnn")


# ---- security --------------------------------------------------------------------------


@pytest.mark.parametrize("profile", sorted(PROFILES))
def test_rendered_pods_run_as_non_root_without_privileges(profile: str):
    cluster = rendered(profile=profile)[1]["spec"]["rayClusterSpec"]
    groups = [cluster["headGroupSpec"], *cluster["workerGroupSpecs"]]
    for group in groups:
        pod = group["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["runAsUser"] == 1000  # the image's `ray` user
        for container in pod["containers"]:
            assert container["securityContext"] == {
                "allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}
    if "autoscalerOptions" in cluster:
        assert cluster["autoscalerOptions"]["securityContext"]["capabilities"] == {
            "drop": ["ALL"]}


def test_k8s_manifests_and_dockerfile_run_as_non_root():
    dockerfile = (REPO / "k8s" / "Dockerfile").read_text()
    assert re.search(r"^USER 1000:100$", dockerfile, re.MULTILINE)
    for name in ("raycluster/raycluster.yaml", "mlflow/mlflow-server.yaml",
                 "mlflow/postgres.yaml"):
        for doc in yaml.safe_load_all((REPO / "k8s" / name).read_text()):
            for pod in _pod_specs(doc):
                assert pod["securityContext"]["runAsNonRoot"] is True, name
                for container in pod["containers"]:
                    assert container["securityContext"]["allowPrivilegeEscalation"] is False
                    assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}


def _pod_specs(doc: dict[str, Any]) -> list[dict[str, Any]]:
    spec = doc.get("spec", {})
    if doc["kind"] == "RayCluster":
        groups = [spec["headGroupSpec"], *spec["workerGroupSpecs"]]
        return [group["template"]["spec"] for group in groups]
    return [spec["template"]["spec"]] if "template" in spec else []

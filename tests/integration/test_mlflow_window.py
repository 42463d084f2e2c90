"""What a user finds in the MLflow UI after a launch, read back through the REST API of
`orchestrator ui` on loopback: system metrics, the dataset input with its digest, the
registered model with its alias, the HTML pages, and only the task's params."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.parse
import urllib.request
from collections.abc import Iterator

import pytest

from orchestrator.cli import main
from orchestrator.config import load_config
from orchestrator.datasets.manifest import load_manifest
from orchestrator.run_description import dataset_input, started_by
from tests.servers import free_port, stop_process_group, wait_for_http

EXPERIMENT = "window"


@pytest.fixture(scope="module")
def ui_url(tmp_path_factory) -> Iterator[str]:
    folder = tmp_path_factory.mktemp("ui-store")
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "orchestrator.cli", "ui", "--port", str(port),
         f"tracking.uri=sqlite:///{folder}/mlflow.db", f"tracking.experiment={EXPERIMENT}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )
    try:
        wait_for_http(f"http://127.0.0.1:{port}/health", server)
        yield f"http://127.0.0.1:{port}"
    finally:
        stop_process_group(server)


def _get(base: str, endpoint: str, **query: str) -> dict:
    url = f"{base}/ajax-api/2.0/mlflow/{endpoint}?{urllib.parse.urlencode(query)}"
    with urllib.request.urlopen(url, timeout=30) as response:
        return json.load(response)


@pytest.fixture(scope="module")
def launched(ui_url, tmp_path_factory) -> tuple[str, dict, list[str]]:
    """A short translation launch tracked by the UI's server: (data path, run, artifacts)."""
    folder = tmp_path_factory.mktemp("window-launch")
    data = folder / "dates"
    overrides = [
        "task=translation", "data.sample=dates", f"data.path={data}", "name=window",
        "train.max_epochs=2", "train.batches_per_epoch=15", "ray.num_workers=1",
        "model.embedding_dim=16", "model.hidden_size=32", "model.num_layers=1",
        "eval.beam_sizes=[1,3]", "eval.max_length=16", "tracking.system_metrics_s=1",
        f"tracking.uri={ui_url}", f"tracking.experiment={EXPERIMENT}",
        f"ray.storage_path={folder / 'runs'}",
    ]
    import ray

    try:
        assert main(["launch", *overrides]) == 0
    finally:
        ray.shutdown()
    experiment = _get(ui_url, "experiments/get-by-name", experiment_name=EXPERIMENT)
    runs = json.loads(urllib.request.urlopen(urllib.request.Request(
        f"{ui_url}/ajax-api/2.0/mlflow/runs/search", method="POST",
        data=json.dumps({"experiment_ids": [experiment["experiment"]["experiment_id"]]}
                        ).encode(), headers={"Content-Type": "application/json"}),
        timeout=30).read())["runs"]
    run = _get(ui_url, "runs/get", run_id=runs[0]["info"]["run_id"])["run"]
    artifacts = _artifact_paths(ui_url, run["info"]["run_id"])
    return str(data), run, artifacts


def _artifact_paths(base: str, run_id: str, path: str = "") -> list[str]:
    found = []
    for item in _get(base, "artifacts/list", run_id=run_id, path=path).get("files", []):
        if item["is_dir"]:
            found += _artifact_paths(base, run_id, item["path"])
        else:
            found.append(item["path"])
    return found


def test_system_metrics_of_the_node_are_on_the_run(launched):
    _, run, _ = launched
    keys = {metric["key"] for metric in run["data"]["metrics"]}
    for name in ("cpu_utilization_percentage", "system_memory_usage_megabytes",
                 "disk_usage_percentage", "network_receive_megabytes"):
        assert f"system/node_0/{name}" in keys
    tags = {tag["key"]: tag["value"] for tag in run["data"]["tags"]}
    assert "system_metrics.node_0" in tags


def test_the_dataset_input_carries_the_manifest_digest_and_split_sizes(launched):
    data, run, _ = launched
    manifest = load_manifest(data)
    expected = dataset_input(load_config(None, ["task=translation", f"data.path={data}"]),
                             manifest).dataset
    (logged,) = run["inputs"]["dataset_inputs"]
    assert logged["dataset"]["digest"] == expected.digest
    assert logged["dataset"]["name"] == "dates"
    assert json.loads(logged["dataset"]["profile"])["train"]["samples"] == (
        manifest.splits["train"].samples)


def test_params_tags_and_metrics_read_as_a_person_expects(launched):
    _, run, _ = launched
    params = {param["key"] for param in run["data"]["params"]}
    assert "eval.beam_sizes" in params and "model.attention" in params
    assert not {"model.encoder", "data.bptt", "generate.temperature"} & params
    keys = {metric["key"] for metric in run["data"]["metrics"]}
    assert "lr" in keys and "epoch" not in keys
    tags = {tag["key"]: tag["value"] for tag in run["data"]["tags"]}
    # the command that started the launch (here this test process's, whatever runs it)
    assert tags["mlflow.source.name"] == started_by()
    assert "translation" in tags["mlflow.note.content"]
    assert tags["mlflow.user"]


def test_the_best_checkpoint_is_a_registered_model_version_with_the_alias(ui_url, launched):
    _, run, _ = launched
    version = _get(ui_url, "registered-models/alias", name=EXPERIMENT, alias="best")
    assert version["model_version"]["run_id"] == run["info"]["run_id"]


def test_the_html_pages_and_pictures_are_logged(launched):
    _, _, artifacts = launched
    assert "translations.html" in artifacts
    assert any(path.startswith("attention/") and path.endswith(".png") for path in artifacts)
    assert any(path.endswith(".png") and "beam" in path for path in artifacts)

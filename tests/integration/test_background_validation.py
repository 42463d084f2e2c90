"""train.background_validation for real: a local Ray offering the scoring resource, two
DDP workers, Ray Train's asynchronous validation, a real MLflow store. Each epoch's
checkpoint is scored on the whole validation split beside training; that score is logged
per epoch, picks the best checkpoint and the weights tested."""

from __future__ import annotations

import subprocess
import sys

import pytest
import ray
from mlflow.tracking import MlflowClient
from ray.cluster_utils import Cluster

from orchestrator.config import load_config
from orchestrator.evaluate import evaluate
from orchestrator.launch import launch
from orchestrator.worker.background_validation import VALIDATION_RESOURCE

EPOCHS = 3


def translation_overrides(workdir, *extra: str) -> list[str]:
    return [
        "task=translation", "data.sample=dates", f"data.path={workdir}/dates",
        "model.cell=gru", "model.embedding_dim=32", "model.hidden_size=64",
        "model.num_layers=1", "model.dropout=0.0", "optim.lr=0.005",
        f"train.max_epochs={EPOCHS}", "train.progress_bar=false", "train.batches_per_epoch=20",
        "train.background_validation=true", "eval.beam_sizes=[1]", "eval.val_bleu_batches=1",
        "data.batch_size=32", "ray.num_workers=2", "ray.cpus_per_worker=1",
        f"tracking.uri=sqlite:///{workdir}/mlflow.db", f"ray.storage_path={workdir}/runs",
        *extra,
    ]


@pytest.fixture(scope="module")
def scored(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("background")
    ray.init(address="local", num_cpus=2, resources={VALIDATION_RESOURCE: 1},
             log_to_driver=False)
    try:
        yield launch(load_config(None, translation_overrides(workdir))), workdir
    finally:
        ray.shutdown()


def test_each_epoch_is_scored_on_the_whole_split_and_the_best_is_tested(scored):
    result, workdir = scored
    client = MlflowClient(result.tracking_uri)
    assert client.get_run(result.run_id).info.status == "FINISHED"
    history = client.get_metric_history(result.run_id, "val_bleu")
    # the background scores only, none from inside the epochs, each at its epoch's step
    val_loss = client.get_metric_history(result.run_id, "val_loss")
    assert sorted(item.step for item in history) == sorted(item.step for item in val_loss)
    assert len(history) == EPOCHS
    best = max(item.value for item in history)
    # the best checkpoint, scored again here on every validation batch, scores what the
    # background task logged: the whole split, not eval.val_bleu_batches=1 of it
    whole = evaluate(result.checkpoint, ["eval.val_bleu_batches=100000"], split="val")
    first_batch = evaluate(result.checkpoint, [], split="val")
    assert whole.metrics["val_bleu"] == pytest.approx(best, abs=1e-6)
    assert first_batch.metrics["val_bleu"] != pytest.approx(best, abs=1e-6)
    # and the run's test pass used that checkpoint's weights
    tested = evaluate(result.checkpoint, [], split="test")
    assert tested.metrics["test_bleu_beam1"] == pytest.approx(
        result.metrics["test_bleu_beam1"], abs=1e-6)


def test_a_cluster_without_the_scoring_resource_is_refused_before_the_run(tmp_path):
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    address = cluster.address
    try:
        out = subprocess.run(
            [sys.executable, "-m", "orchestrator.cli", "launch",
             *translation_overrides(tmp_path, f"ray.address={address}")],
            capture_output=True, text=True, timeout=300, cwd=tmp_path)
    finally:
        cluster.shutdown()
    assert out.returncode == 2, out.stderr
    assert out.stderr.strip().splitlines()[-1] == (
        f"error: train.background_validation=true needs a Ray node offering the resource "
        f"'{VALIDATION_RESOURCE}', and ray.address={address} has none; start one "
        f"node with `ray start --resources '{{\"{VALIDATION_RESOURCE}\": 1}}'` or set "
        "train.background_validation=false")
    client = MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")
    assert not client.search_runs([e.experiment_id for e in client.search_experiments()])

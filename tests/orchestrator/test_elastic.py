"""Elastic training without a cluster: the config's worker range, the ScalingConfig it
becomes, and the world-size rule a worker follows (a plain Lightning Trainer is a world of
one). The resizing itself runs on a two-node cluster in tests/integration/test_elastic.py."""

from __future__ import annotations

import os

import pytest
import pytorch_lightning as pl
from mlflow.tracking import MlflowClient
from pytorch_lightning.loggers import MLFlowLogger

from orchestrator.config import load_config
from orchestrator.errors import OrchestratorError
from orchestrator.lightning_modules.optimizers import ApplyOptimSettings
from orchestrator.tracking import start_run
from orchestrator.worker.elastic import (
    ELASTIC_START_TIMEOUT_S,
    START_TIMEOUT_ENV,
    batches_per_rank,
    lr_scale,
    worker_scaling,
)
from orchestrator.worker.restarts import (
    WORLD_SIZE_METRIC,
    FollowWorldSize,
    LogEpochLearningRate,
    LogEpochsOnce,
)
from orchestrator.worker.tasks import TASKS
from tests.small_runs import STEPS_PER_EPOCH, small_config


@pytest.mark.parametrize("world, full, scale, batches", [
    (2, 2, 1.0, 12),  # the configured world: as configured
    (1, 2, 0.5, 24),  # half the workers: half the rate, twice the batches each
    (3, 4, 0.75, 16),  # 12 x 4 = 48 batches an epoch, 16 on each of 3
    (3, 8, 0.375, 32),  # 96 / 3
    (5, 8, 0.625, 20),  # 96 / 5 = 19.2, rounded up
])
def test_the_rate_follows_the_global_batch_and_an_epoch_keeps_its_samples(
    world, full, scale, batches
):
    assert lr_scale(world, full) == scale
    assert batches_per_rank(12, world, full) == batches
    assert batches * world >= 12 * full > (batches - 1) * world


def test_a_worker_range_is_an_elastic_scaling_config(monkeypatch):
    monkeypatch.delenv(START_TIMEOUT_ENV, raising=False)
    ray = load_config(None, ["ray.min_workers=1", "ray.num_workers=4",
                             "ray.resize_check_s=30"]).ray
    scaling = worker_scaling(ray, {"CPU": 1.0})
    assert ray.elastic and scaling.num_workers == (1, 4)
    assert scaling.elastic_resize_monitor_interval_s == 30
    assert os.environ[START_TIMEOUT_ENV] == str(ELASTIC_START_TIMEOUT_S)


@pytest.mark.parametrize("overrides", [[], ["ray.min_workers=2"]])
def test_a_fixed_size_is_a_plain_worker_count(overrides, monkeypatch):
    monkeypatch.delenv(START_TIMEOUT_ENV, raising=False)
    ray = load_config(None, ["ray.num_workers=2", *overrides]).ray
    scaling = worker_scaling(ray, {"CPU": 1.0})
    assert not ray.elastic and scaling.num_workers == 2
    assert START_TIMEOUT_ENV not in os.environ  # Ray's own default stays


@pytest.mark.parametrize("overrides, message", [
    (["ray.min_workers=3"], "ray.min_workers 3 is more than ray.num_workers 2"),
    (["ray.min_workers=0"], "ray.min_workers: input should be greater than or equal to 1"),
    (["ray.resize_check_s=0"], "ray.resize_check_s: input should be greater than 0"),
])
def test_a_bad_worker_range_is_one_line(overrides, message):
    with pytest.raises(OrchestratorError, match=message) as refused:
        load_config(None, overrides)
    assert "\n" not in str(refused.value)


def test_a_run_survives_a_few_worker_failures_by_default():
    assert load_config(None, []).ray.max_failures == 3


@pytest.fixture
def store(tmp_path):
    return f"sqlite:///{tmp_path}/mlflow.db"


class SeenMidEpoch(pl.Callback):
    """How many training losses MLflow holds half way through the epoch."""

    def __init__(self, uri: str, run_id: str):
        self.client, self.run_id, self.seen = MlflowClient(uri), run_id, None

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if batch_idx == STEPS_PER_EPOCH:
            self.seen = len(self.client.get_metric_history(self.run_id, "train_loss"))


def test_one_worker_of_two_trains_twice_the_batches_at_half_the_rate_logged_at_epoch_end(
    markov_dataset, tmp_path, store
):
    config = small_config(markov_dataset, tmp_path, "ray.min_workers=1", "ray.num_workers=2",
                          "train.max_epochs=1")
    task = TASKS[config.task]
    datamodule = task.build_datamodule(config)
    module = task.build_module(config, datamodule)
    run_id = start_run(store, "elastic", "one-of-two", tags={})
    probe = SeenMidEpoch(store, run_id)
    trainer = pl.Trainer(
        max_epochs=1, accelerator="cpu", devices=1, log_every_n_steps=1,
        logger=MLFlowLogger(tracking_uri=store, run_id=run_id, synchronous=False),
        callbacks=[FollowWorldSize(config), LogEpochsOnce(), LogEpochLearningRate(),
                   ApplyOptimSettings(), probe],
        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
        num_sanity_val_steps=0, use_distributed_sampler=False,
    )
    trainer.fit(module, datamodule=datamodule)

    assert trainer.global_step == 2 * STEPS_PER_EPOCH
    assert trainer.optimizers[0].param_groups[0]["lr"] == pytest.approx(config.optim.lr / 2)
    client = MlflowClient(store)
    assert [m.value for m in client.get_metric_history(run_id, "lr")] == [
        pytest.approx(config.optim.lr / 2)]
    assert [m.value for m in client.get_metric_history(run_id, WORLD_SIZE_METRIC)] == [1.0]
    assert probe.seen == 0  # held while the epoch ran
    steps = [m.step for m in client.get_metric_history(run_id, "train_loss")]
    assert steps == list(range(2 * STEPS_PER_EPOCH))

"""What Lightning needs in a worker group that Ray Train may restart from the last
checkpoint (a lost worker, an elastic resize): follow the world size it is restarted in,
log each epoch to MLflow once, the rate each epoch trained at, and draw new random numbers
after the checkpoint instead of those the fit began with.

Both go first in the Trainer's callback list, in this order: FollowWorldSize scales the
rate at the epoch's start, and LogEpochsOnce's epoch-end flush sends the world size that
FollowWorldSize and the rate that LogEpochLearningRate log.
"""

from __future__ import annotations

import os
from typing import Any

import mlflow
import pytorch_lightning as pl

from orchestrator.config import ExperimentConfig
from orchestrator.worker.elastic import batches_per_rank, lr_scale
from orchestrator.worker.metric_delivery import KeepingMLFlowLogger

WORLD_SIZE_METRIC = "world_size"
LR_METRIC = "lr"
BUFFERING_ENV = "MLFLOW_ASYNC_LOGGING_BUFFERING_SECONDS"
HOLD_S = 24 * 3600  # MLflow's async queue drains on a flush, or after this long


class FollowWorldSize(pl.Callback):
    """Scales the learning rate and the batches per rank to this group's world size, by
    the rule of `orchestrator.worker.elastic` (a no-op at `ray.num_workers` workers, so in
    every fixed-size run), and logs the world size each epoch trained in."""

    def __init__(self, config: ExperimentConfig):
        self.full_world = config.ray.num_workers
        self.batches_per_epoch = config.train.batches_per_epoch
        self._scaled = False

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        # Before the training loader is made, which reads the count (ShardedDataModule).
        datamodule = trainer.datamodule
        if stage == "fit" and self.batches_per_epoch is not None and datamodule is not None:
            datamodule.batches_per_epoch = batches_per_rank(
                self.batches_per_epoch, trainer.world_size, self.full_world)

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # Once, after every on_train_start (ApplyOptimSettings resets a restored optimiser
        # to the config's rate, which a checkpoint holds scaled to its own world).
        if self._scaled:
            return
        self._scaled = True
        scale = lr_scale(trainer.world_size, self.full_world)
        for optimizer in trainer.optimizers:
            for group in optimizer.param_groups:
                group["lr"] *= scale
                if "initial_lr" in group:
                    group["initial_lr"] *= scale
        for scheduler_config in trainer.lr_scheduler_configs:
            schedule = scheduler_config.scheduler
            schedule.base_lrs = [rate * scale for rate in schedule.base_lrs]

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # Straight to the logger, to be flushed with the epoch (a `self.log` value reaches
        # the logger only after every epoch-end hook, Ray's checkpoint report included).
        if trainer.global_rank == 0 and trainer.logger is not None:
            trainer.logger.log_metrics({WORLD_SIZE_METRIC: float(trainer.world_size)},
                                       step=max(trainer.global_step - 1, 0))


class LogEpochLearningRate(pl.Callback):
    """The learning rate each epoch trained at, as `lr` (`lr/N` for optimizer N > 0),
    logged at the epoch's end with the world size. Lightning's LearningRateMonitor logs it
    at the epoch's start instead: when a lost node interrupts an epoch, the surviving
    worker's exit can flush what LogEpochsOnce held, and the first attempt's rate then holds
    the step (ContinuedRunLogger keeps one value per step), not the rate the epoch was
    trained again at on fewer workers."""

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # before the epoch's scheduler step, which Lightning takes after this hook
        if trainer.global_rank != 0 or trainer.logger is None:
            return
        rates = {LR_METRIC if index == 0 else f"{LR_METRIC}/{index}":
                 float(optimizer.param_groups[0]["lr"])
                 for index, optimizer in enumerate(trainer.optimizers)}
        trainer.logger.log_metrics(rates, step=max(trainer.global_step - 1, 0))


class NewDrawsOnResume(pl.Callback):
    """Reseeds every random stream from the run's seed and the checkpoint's step when a fit
    resumes. Each worker seeds from the run's seed alone, so a resumed fit drew what the
    fit's start drew: the training stream walked the shards in its first order from the
    first sample again, and dropout repeated the first steps' masks. A run stopped every
    epoch (spot nodes) then trained on the same first epoch's batches each time and never
    reached the rest of the data. Reseeded here, before Lightning makes the training loader
    (its loader workers' seeds come from torch's), each resumption draws an order of its
    own, the same on every rerun of it."""

    def __init__(self, seed: int) -> None:
        self.seed = seed

    def on_load_checkpoint(self, trainer: pl.Trainer, pl_module: pl.LightningModule,
                           checkpoint: dict[str, Any]) -> None:
        step = int(checkpoint.get("global_step", 0))
        pl.seed_everything((self.seed + step) % 2**32, workers=True, verbose=False)


class LogEpochsOnce(pl.Callback):
    """Holds what rank 0 logs to MLflow during an epoch until the epoch ends, just before
    Ray Train checkpoints it and a sweep's scheduler reads the report (which may stop the
    trial, killing its process). A group restarted from that checkpoint trains the next epoch
    again; had its first steps reached MLflow already, they would be logged twice (at the
    same steps, the learning rate maybe with another value). A worker killed from outside
    (a lost node, a resize) takes the held metrics with it; one that fails on its own
    error sends them, so the run shows what led to the error. The cost: per-step metrics
    reach MLflow once per epoch instead of every 2 s. (ContinuedRunLogger keeps one value
    per step whatever reached MLflow; with this, the value kept is the one trained on.)"""

    def __init__(self) -> None:
        self._previous: str | None = None

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if stage == "fit":
            self._previous = os.environ.get(BUFFERING_ENV)
            os.environ[BUFFERING_ENV] = str(HOLD_S)

    def teardown(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if stage == "fit":  # the setting first: the flush restarts MLflow's queue
            if self._previous is None:
                os.environ.pop(BUFFERING_ENV, None)
            else:
                os.environ[BUFFERING_ENV] = self._previous
            _flush(trainer)

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # what Lightning logged after the last epoch's hooks (its throughput): that epoch
        # is checkpointed by now
        _flush(trainer)

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        _flush(trainer)

    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule,
                     exception: BaseException) -> None:
        _flush(trainer)


def _flush(trainer: pl.Trainer) -> None:
    """Send what rank 0 holds; while the tracking server is away the keeping logger only
    asks for a background retry (waiting here would stop training)."""
    if trainer.global_rank != 0:
        return
    if isinstance(trainer.logger, KeepingMLFlowLogger):
        trainer.logger.flush()
    else:
        mlflow.flush_async_logging()

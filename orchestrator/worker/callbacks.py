"""The project's own Lightning callbacks in a Train worker (the models' own live in
`lightning_modules`): what a checkpoint carries and when metrics reach MLflow."""

from __future__ import annotations

from typing import Any

import mlflow
import pytorch_lightning as pl

from orchestrator.config import ExperimentConfig
from orchestrator.run_files import CONFIG_KEY
from orchestrator.worker.metric_delivery import KeepingMLFlowLogger


class ConfigInCheckpoint(pl.Callback):
    """Stores the experiment config in every checkpoint, so `orchestrator eval` needs
    nothing but the checkpoint."""

    def __init__(self, config: ExperimentConfig):
        self.config = config.model_dump()

    def on_save_checkpoint(self, trainer: pl.Trainer, pl_module: pl.LightningModule,
                           checkpoint: dict[str, Any]) -> None:
        checkpoint[CONFIG_KEY] = self.config


class FlushMetrics(pl.Callback):
    """Send the epoch's buffered metrics to MLflow before Ray hears of the epoch: a sweep's
    scheduler may stop the trial (killing its process) as soon as it reads the report.
    While the server is away the keeping logger skips it (training would wait)."""

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.global_rank != 0:
            return
        if isinstance(trainer.logger, KeepingMLFlowLogger):
            trainer.logger.flush()
        else:
            mlflow.flush_async_logging()

"""What every checkpoint a Train worker writes carries besides the weights (the callbacks
for restarts are in `worker.restarts`, the models' own in `lightning_modules`)."""

from __future__ import annotations

from typing import Any

import pytorch_lightning as pl

from orchestrator.config import ExperimentConfig
from orchestrator.run_files import CONFIG_KEY


class ConfigInCheckpoint(pl.Callback):
    """Stores the experiment config in every checkpoint, so `orchestrator eval` needs
    nothing but the checkpoint."""

    def __init__(self, config: ExperimentConfig):
        self.config = config.model_dump()

    def on_save_checkpoint(self, trainer: pl.Trainer, pl_module: pl.LightningModule,
                           checkpoint: dict[str, Any]) -> None:
        checkpoint[CONFIG_KEY] = self.config

"""The task registry: one explicit entry per task name, nothing registered by decorators."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pytorch_lightning as pl

from orchestrator.config import ExperimentConfig
from orchestrator.datasets.language_model_data import LanguageModelDataModule
from orchestrator.lightning_modules.language_model import LanguageModelTask


@dataclass(frozen=True)
class TaskSpec:
    module_class: type[pl.LightningModule]  # also loads the task's checkpoints
    build_datamodule: Callable[[ExperimentConfig], pl.LightningDataModule]
    build_module: Callable[[ExperimentConfig, pl.LightningDataModule], pl.LightningModule]
    monitor: str  # validation metric that ranks checkpoints
    mode: str  # "min" or "max"


def _language_model_data(config: ExperimentConfig) -> LanguageModelDataModule:
    data = config.data
    return LanguageModelDataModule(
        data.path,
        batch_size=data.batch_size,
        bptt=data.bptt,
        num_workers=data.num_workers,
        shuffle_buffer=data.shuffle_buffer,
        batches_per_epoch=config.train.batches_per_epoch,
    )


def _language_model(
    config: ExperimentConfig, datamodule: LanguageModelDataModule
) -> LanguageModelTask:
    return LanguageModelTask(
        model=config.model.model_dump(),
        optim=config.optim.model_dump(),
        vocab=datamodule.tokenizer.tokens,
        level=datamodule.tokenizer.level,
        carry_hidden=config.data.carry_hidden,
    )


TASKS: dict[str, TaskSpec] = {
    "language_model": TaskSpec(
        module_class=LanguageModelTask,
        build_datamodule=_language_model_data,
        build_module=_language_model,
        monitor="val_loss",
        mode="min",
    ),
}

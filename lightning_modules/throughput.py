"""Training throughput in tokens per second over all ranks, logged once per epoch.

The clock runs from the epoch's first batch to its last, so loader start-up and the
validation that follows are not counted: the number compares with a plain training loop.
The tokens are summed over ranks, whose batches of the same size may hold different
counts (translation's sentences differ in length between ranks).
"""

from __future__ import annotations

import time
from typing import Any

import pytorch_lightning as pl
import torch

from orchestrator.datasets.batches import IGNORE_INDEX


class TokenThroughput(pl.Callback):
    def __init__(self) -> None:
        self._started: float | None = None
        self._finished = 0.0
        self._tokens = 0

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._started, self._tokens = None, 0

    def on_train_batch_start(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        if self._started is None:
            self._started = time.perf_counter()

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any,
        batch_idx: int,
    ) -> None:
        self._tokens += tokens_in(batch)
        self._finished = time.perf_counter()

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # every rank joins the sum (one all-reduce an epoch) before any may leave
        tokens = trainer.strategy.reduce(
            torch.tensor(float(self._tokens), device=pl_module.device), reduce_op="sum")
        if self._started is None or self._finished <= self._started:
            return
        rate = float(tokens) / (self._finished - self._started)
        pl_module.log("train_tokens_per_sec", rate, rank_zero_only=True)


def tokens_in(batch: dict[str, Any]) -> int:
    """Tokens a batch trains on: the predicted targets of sequence outputs (language model,
    translation, captioning), the input tokens (sentence classification), or the labelled
    frames (frame classification: a frame is its token)."""
    for key in ("targets", "tgt_out"):
        if key in batch:
            return int((batch[key] != IGNORE_INDEX).sum())
    if "lengths" in batch:
        return int(batch["lengths"].sum())
    return batch["labels"].numel()

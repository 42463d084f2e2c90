"""Optimisers and learning-rate schedules from the `optim` config section, for every task."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch

OPTIMIZERS: dict[str, type[torch.optim.Optimizer]] = {
    "adam": torch.optim.Adam,
    "sgd": torch.optim.SGD,
}


def configure_optimizers(
    parameters: Iterable[torch.nn.Parameter], settings: dict[str, Any]
) -> dict[str, Any]:
    """The optimizer, and an epoch-wise schedule that multiplies the learning rate by
    `lr_decay` after every epoch from `lr_decay_start` on (Zaremba et al.'s schedule)."""
    optimizer = OPTIMIZERS[settings["optimizer"]](
        parameters, lr=settings["lr"], weight_decay=settings["weight_decay"]
    )
    decay, start = settings["lr_decay"], settings["lr_decay_start"]
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda epoch: decay ** max(0, epoch + 1 - start)
    )
    return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": "epoch"}}

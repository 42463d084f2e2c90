"""Keep the weights of the best validation epoch in memory, to test with them.

The launcher's checkpoints live on storage that a worker may not read back cheaply; a CPU
copy of the state dict is enough to evaluate the best epoch, as published numbers do.
"""

from __future__ import annotations

import pytorch_lightning as pl
import torch


class KeepBestWeights(pl.Callback):
    def __init__(self, monitor: str, mode: str):
        self.monitor = monitor
        self.better = torch.lt if mode == "min" else torch.gt
        self.best: torch.Tensor | None = None
        self.state: dict[str, torch.Tensor] | None = None

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # Runs after the epoch's validation, whose metrics are in callback_metrics by now.
        value = trainer.callback_metrics.get(self.monitor)
        if value is not None:
            self.offer(value, pl_module.state_dict())

    def offer(self, value: torch.Tensor | float, state: dict[str, torch.Tensor]) -> bool:
        """Keep `state` if its validation value is the best yet; say whether it was."""
        value = torch.as_tensor(value, dtype=torch.float32)
        if self.best is not None and not self.better(value, self.best):
            return False
        self.best = value.detach().clone()
        self.state = {k: v.detach().cpu().clone() for k, v in state.items()}
        return True

    def restore(self, pl_module: pl.LightningModule) -> None:
        """Load the best epoch's weights (no-op if no validation ran)."""
        if self.state is not None:
            pl_module.load_state_dict(self.state)

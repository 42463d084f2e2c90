"""What every task's LightningModule shares: the optimiser from its `optim` settings, the
gradient norm before clipping, and a training loss that must stay finite."""

from __future__ import annotations

from typing import Any

import pytorch_lightning as pl
import torch
from pytorch_lightning.utilities import grad_norm
from torch import nn

from orchestrator.lightning_modules.optimizers import configure_optimizers


class TaskModule(pl.LightningModule):
    """Subclasses set `self.model` and save an `optim` hyperparameter."""

    model: nn.Module

    def log_training_loss(self, loss: torch.Tensor) -> torch.Tensor:
        """Log the step's loss; a NaN or infinite loss stops training with what to change."""
        if not torch.isfinite(loss):
            raise FloatingPointError(
                f"training loss is {loss.item()} at step {self.global_step}; "
                "lower optim.lr or set optim.clip"
            )
        self.log("train_loss", loss, on_step=True, on_epoch=False, prog_bar=True)
        return loss

    def on_before_optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
        # Lightning clips after this hook, so this is the norm before clipping.
        norm = grad_norm(self.model, norm_type=2)["grad_2.0_norm_total"]
        self.log("grad_norm", norm, on_step=True, on_epoch=False)

    def configure_optimizers(self) -> dict[str, Any]:
        return configure_optimizers(self.parameters(), self.hparams["optim"])

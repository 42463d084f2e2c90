"""What every task's LightningModule shares: the optimiser from its `optim` settings, the
gradient norm before clipping, and a training loss that must stay finite."""

from __future__ import annotations

from typing import Any

import pytorch_lightning as pl
import torch
from torch import nn
from torchmetrics import MetricCollection

from orchestrator.lightning_modules.optimizers import configure_optimizers


class TaskModule(pl.LightningModule):
    """Subclasses set `self.model` and save an `optim` hyperparameter."""

    model: nn.Module

    def log_training_loss(self, loss: torch.Tensor) -> torch.Tensor:
        """Keep the batch's loss for the step's `train_loss`; a NaN or infinite loss stops
        training with what to change."""
        if not torch.isfinite(loss):
            raise FloatingPointError(
                f"training loss is {loss.item()} at step {self.global_step}; "
                "lower optim.lr or set optim.clip"
            )
        if not hasattr(self, "_step_losses"):
            self._step_losses: list[torch.Tensor] = []
        self._step_losses.append(loss.detach())
        return loss

    def log_and_reset(self, metrics: MetricCollection) -> None:
        """Log a split's torchmetrics and start them afresh. compute() already sums over
        ranks; sync_dist's mean of the equal values then changes nothing."""
        self.log_dict(metrics.compute(), sync_dist=True)
        metrics.reset()

    def on_before_optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
        # One point per optimiser step: the mean loss of the batches whose gradients it
        # applies (several with train.accumulate_grad_batches), as fairseq logs an update.
        losses, self._step_losses = getattr(self, "_step_losses", []), []
        if losses:
            self.log("train_loss", torch.stack(losses).mean(), on_step=True, on_epoch=False,
                     prog_bar=True)
        # Lightning clips after this hook, so this is the norm before clipping.
        grads = [p.grad for p in self.model.parameters() if p.grad is not None]
        norm = torch.nn.utils.get_total_norm(grads, norm_type=2.0)
        self._step_grad_norm = norm  # clipping by norm reuses it, not computing it again
        self.log("grad_norm", norm, on_step=True, on_epoch=False)
        every = self.trainer.log_every_n_steps
        if every > 1:  # the steps between two logged ones, summarised: no spike goes unseen
            if not hasattr(self, "_grad_norms"):
                self._grad_norms = GradNormWindow()
            last = (self.global_step + 1) % every == 0  # Lightning's logging cadence
            for name, value in self._grad_norms.add(norm, last).items():
                self.log(name, value, on_step=True, on_epoch=False)

    def configure_gradient_clipping(
        self, optimizer: torch.optim.Optimizer, gradient_clip_val: float | None = None,
        gradient_clip_algorithm: str | None = None,
    ) -> None:
        """Clipping by norm scales by the norm `on_before_optimizer_step` just took (every
        parameter is the model's); Lightning's own clipping would compute it once more."""
        norm = getattr(self, "_step_grad_norm", None)
        if gradient_clip_val and gradient_clip_algorithm in (None, "norm") and norm is not None:
            torch.nn.utils.clip_grads_with_norm_(self.model.parameters(), gradient_clip_val,
                                                 norm)
        else:
            super().configure_gradient_clipping(optimizer, gradient_clip_val,
                                                gradient_clip_algorithm)

    def configure_optimizers(self) -> dict[str, Any]:
        return configure_optimizers(self.parameters(), self.hparams["optim"])


class GradNormWindow:
    """Min, mean and max of the gradient norms since the last logged step, kept as tensors
    on the device (no host sync per step)."""

    def __init__(self) -> None:
        self.norms: list[torch.Tensor] = []

    def add(self, norm: torch.Tensor, last: bool) -> dict[str, torch.Tensor]:
        """Take this step's norm; on the logging interval's `last` step, the summary (and a
        fresh window), else nothing."""
        self.norms.append(norm.detach())
        if not last:
            return {}
        stacked = torch.stack(self.norms)
        self.norms = []
        return {"grad_norm_min": stacked.min(), "grad_norm_mean": stacked.mean(),
                "grad_norm_max": stacked.max()}

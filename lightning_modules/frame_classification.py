"""The `video_frame_classification` task: training, evaluation and optimisers around
FrameClassifier. Metrics count frames, not clips: frame accuracy and macro F1."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from orchestrator.datasets.batches import FrameLabelBatch
from orchestrator.lightning_modules.frame_classifier import (
    FrameClassifier,
    FrameClassifierConfig,
)
from orchestrator.lightning_modules.frame_label_picture import CLIPS_SHOWN, frame_label_figure
from orchestrator.lightning_modules.metrics import classification_metrics
from orchestrator.lightning_modules.task_module import TaskModule


class FrameClassificationTask(TaskModule):
    """Steps and optimisers only; data comes from FrameLabelDataModule."""

    def __init__(self, model: dict[str, Any], optim: dict[str, Any], labels: list[str],
                 media: dict[str, Any]):
        """`media` is how clips are read (kind, image_size, frames), kept so inference
        prepares a clip exactly as training did."""
        super().__init__()
        # Not sent to the logger: the launcher logs the flattened config as MLflow params.
        self.save_hyperparameters(logger=False)
        self.model = FrameClassifier(FrameClassifierConfig(num_classes=len(labels), **model))
        self.labels = labels
        self.media = media
        self.val_metrics = classification_metrics(len(labels), prefix="val_frame_")
        self.test_metrics = classification_metrics(len(labels), prefix="test_frame_")
        self.artifacts: dict[str, Any] = {}  # logged by the launcher's train loop
        self._shown: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None

    def training_step(self, batch: FrameLabelBatch, batch_idx: int) -> torch.Tensor:
        logits = self.model(batch["frames"])
        loss = F.cross_entropy(logits.flatten(0, 1), batch["labels"].flatten())
        return self.log_training_loss(loss)

    def validation_step(self, batch: FrameLabelBatch, batch_idx: int) -> None:
        logits = self.model(batch["frames"])
        self.val_metrics.update(logits.flatten(0, 1), batch["labels"].flatten())

    def test_step(self, batch: FrameLabelBatch, batch_idx: int) -> None:
        logits = self.model(batch["frames"])
        self.test_metrics.update(logits.flatten(0, 1), batch["labels"].flatten())
        if batch_idx == 0:  # the first clips, drawn at the end (frame_labels.png)
            self._shown = (batch["frames"][:CLIPS_SHOWN].cpu(),
                           batch["labels"][:CLIPS_SHOWN].cpu(),
                           logits[:CLIPS_SHOWN].argmax(dim=-1).cpu())

    def on_validation_epoch_end(self) -> None:
        self.log_and_reset(self.val_metrics)

    def on_test_epoch_end(self) -> None:
        self.log_and_reset(self.test_metrics)
        if self._shown is not None:
            frames, truth, predicted = self._shown
            self.artifacts["frame_labels.png"] = frame_label_figure(
                frames, self._names(truth), self._names(predicted))
            self._shown = None

    def _names(self, indices: torch.Tensor) -> list[list[str]]:
        return [[self.labels[i] for i in row] for row in indices.tolist()]

    @torch.no_grad()
    def label_frames(self, frames: torch.Tensor) -> list[list[str]]:
        """frames (B, F, 3, H, W) -> the label of every frame of every clip."""
        self.model.eval()
        return self._names(self.model(frames.to(self.device)).argmax(dim=-1))

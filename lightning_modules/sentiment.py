"""The `sentiment` task: training, evaluation and optimisers around RNNClassifier."""

from __future__ import annotations

from typing import Any

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from matplotlib.figure import Figure
from pytorch_lightning.utilities import grad_norm

from orchestrator.datasets.batches import ClassificationBatch
from orchestrator.datasets.tokenizer import Tokenizer
from orchestrator.lightning_modules.metrics import classification_metrics, confusion_matrix
from orchestrator.lightning_modules.optimizers import configure_optimizers
from orchestrator.lightning_modules.rnn_classifier import RNNClassifier, RNNClassifierConfig


class SentimentTask(pl.LightningModule):
    """Steps and optimisers only; data comes from ClassificationDataModule."""

    def __init__(
        self, model: dict[str, Any], optim: dict[str, Any], vocab: list[str], labels: list[str]
    ):
        super().__init__()
        # Not sent to the logger: the launcher logs the flattened config as MLflow params.
        self.save_hyperparameters(logger=False)
        self.model = RNNClassifier(
            RNNClassifierConfig(vocab_size=len(vocab), num_classes=len(labels), **model)
        )
        self.tokenizer = Tokenizer("word", vocab)
        self.labels = labels
        self.val_metrics = classification_metrics(len(labels), prefix="val_")
        self.test_metrics = classification_metrics(len(labels), prefix="test_")
        self.test_confusion = confusion_matrix(len(labels))
        self.artifacts: dict[str, Figure | str] = {}  # logged by the launcher's train loop

    def training_step(self, batch: ClassificationBatch, batch_idx: int) -> torch.Tensor:
        logits = self.model(batch["tokens"], batch["lengths"])
        loss = F.cross_entropy(logits, batch["labels"])
        if not torch.isfinite(loss):
            raise FloatingPointError(
                f"training loss is {loss.item()} at step {self.global_step}; "
                "lower optim.lr or set optim.clip"
            )
        self.log("train_loss", loss, on_step=True, on_epoch=False, prog_bar=True)
        return loss

    def on_before_optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
        # Lightning clips after this hook, so this is the norm before clipping.
        self.log("grad_norm", grad_norm(self.model, norm_type=2)["grad_2.0_norm_total"])

    def validation_step(self, batch: ClassificationBatch, batch_idx: int) -> None:
        logits = self.model(batch["tokens"], batch["lengths"])
        self.val_metrics.update(logits, batch["labels"])

    def test_step(self, batch: ClassificationBatch, batch_idx: int) -> None:
        logits = self.model(batch["tokens"], batch["lengths"])
        self.test_metrics.update(logits, batch["labels"])
        self.test_confusion.update(logits, batch["labels"])

    def on_validation_epoch_end(self) -> None:
        # compute() sums over ranks; the mean of equal values across ranks changes nothing.
        self.log_dict(self.val_metrics.compute(), sync_dist=True)
        self.val_metrics.reset()

    def on_test_epoch_end(self) -> None:
        self.log_dict(self.test_metrics.compute(), sync_dist=True)
        self.test_metrics.reset()
        figure, _ = self.test_confusion.plot(labels=self.labels)
        figure.set_size_inches(1.2 * len(self.labels) + 3, 1.2 * len(self.labels) + 2.5)
        self.artifacts["confusion_matrix.png"] = figure
        self.test_confusion.reset()

    def configure_optimizers(self) -> dict[str, Any]:
        return configure_optimizers(self.parameters(), self.hparams["optim"])

    @torch.no_grad()
    def classify(self, sentences: list[str]) -> list[str]:
        """The predicted label name of each sentence (lower-cased like the training data)."""
        self.model.eval()
        ids = [self.tokenizer.encode(s.lower()) or [self.tokenizer.unk_id] for s in sentences]
        lengths = torch.tensor([len(row) for row in ids])
        tokens = torch.zeros(len(ids), int(lengths.max()), dtype=torch.long)
        for row, seq in enumerate(ids):
            tokens[row, : len(seq)] = torch.tensor(seq)
        predictions = self.model(tokens.to(self.device), lengths).argmax(dim=-1)
        return [self.labels[i] for i in predictions.tolist()]

"""The `sentiment` task: training, evaluation and optimisers around RNNClassifier."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from matplotlib.figure import Figure

from orchestrator.datasets.batches import ClassificationBatch
from orchestrator.datasets.tokenizer import Tokenizer
from orchestrator.lightning_modules.metrics import classification_metrics, confusion_matrix
from orchestrator.lightning_modules.rnn_classifier import RNNClassifier, RNNClassifierConfig
from orchestrator.lightning_modules.task_module import TaskModule


class SentimentTask(TaskModule):
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
        return self.log_training_loss(F.cross_entropy(logits, batch["labels"]))

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

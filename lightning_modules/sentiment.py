"""The `sentiment` task: training, evaluation and optimisers around RNNClassifier."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from matplotlib.figure import Figure

from orchestrator.datasets.batches import ClassificationBatch
from orchestrator.datasets.tokenizer import Tokenizer
from orchestrator.datasets.word_vectors import Coverage
from orchestrator.lightning_modules.metrics import classification_metrics, confusion_matrix
from orchestrator.lightning_modules.rnn_classifier import RNNClassifier, RNNClassifierConfig
from orchestrator.lightning_modules.task_module import TaskModule


class SentimentTask(TaskModule):
    """Steps and optimisers only; data comes from ClassificationDataModule."""

    def __init__(
        self, model: dict[str, Any], optim: dict[str, Any], vocab: list[str], labels: list[str],
        pretrained_embedding: torch.Tensor | None = None,
        vectors_coverage: Coverage | None = None,
    ):
        """`pretrained_embedding` (V, embedding_dim), from `word_vectors.embedding_matrix`,
        initialises the embedding; `vectors_coverage` is logged when training starts.
        Training passes them (worker.tasks); they are not hyperparameters, so a module
        rebuilt from a checkpoint gets neither and never reads the vectors again: its
        trained embedding comes from the state dict, and the vectors file need not exist
        on the machine that evaluates it."""
        super().__init__()
        # Not sent to the logger: the launcher logs the flattened config as MLflow params.
        self.save_hyperparameters(logger=False,
                                  ignore=["pretrained_embedding", "vectors_coverage"])
        self.model = RNNClassifier(
            RNNClassifierConfig(vocab_size=len(vocab), num_classes=len(labels), **model)
        )
        if pretrained_embedding is not None:
            self._load_embedding(pretrained_embedding)
        self.vectors_coverage = vectors_coverage
        self.tokenizer = Tokenizer("word", vocab)
        self.labels = labels
        self.val_metrics = classification_metrics(len(labels), prefix="val_")
        self.test_metrics = classification_metrics(len(labels), prefix="test_")
        self.test_confusion = confusion_matrix(len(labels))
        self.artifacts: dict[str, Figure | str] = {}  # logged by the launcher's train loop

    def _load_embedding(self, weight: torch.Tensor) -> None:
        """Copy pretrained rows into the embedding; a size other than the model's is a
        one-line error (the launcher checks the same before Ray starts)."""
        embedding = self.model.embedding.weight
        if weight.shape[1] != embedding.shape[1]:
            raise ValueError(
                f"model.embedding_dim={embedding.shape[1]} but the vectors have "
                f"{weight.shape[1]} dimensions; set model.embedding_dim={weight.shape[1]}")
        if weight.shape[0] != embedding.shape[0]:
            raise ValueError(f"the pretrained embedding has {weight.shape[0]} rows for a "
                             f"vocabulary of {embedding.shape[0]} words")
        with torch.no_grad():
            embedding.copy_(weight)

    def on_train_start(self) -> None:
        # Metrics, not params: MLflow params are the config (the launcher's), and a metric
        # shows as a column of the runs table. Step 0: a continued run logs it once.
        coverage = self.vectors_coverage
        if coverage is not None and self.trainer.global_rank == 0 and self.logger is not None:
            self.logger.log_metrics({"vectors_coverage": coverage.fraction,
                                     "vectors_found": float(coverage.found),
                                     "vectors_vocabulary": float(coverage.words)}, step=0)

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
        self.log_and_reset(self.val_metrics)

    def on_test_epoch_end(self) -> None:
        self.log_and_reset(self.test_metrics)
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

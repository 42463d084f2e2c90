"""The one metrics module: every task's scores come from well-kept libraries, here.

Perplexity is exp of the token-weighted mean cross-entropy over the whole split
(torchmetrics sums log-probabilities and token counts across batches and ranks), never a
mean of per-batch perplexities.
"""

from __future__ import annotations

import math

from sacrebleu.metrics import BLEU
from torchmetrics import MetricCollection
from torchmetrics.classification import Accuracy, ConfusionMatrix, F1Score
from torchmetrics.text import Perplexity

from orchestrator.datasets.batches import IGNORE_INDEX


def perplexity_metric() -> Perplexity:
    """Accumulates over a split; padding targets (IGNORE_INDEX) count for nothing."""
    return Perplexity(ignore_index=IGNORE_INDEX)


def bits_per_token(perplexity: float) -> float:
    """Bits per character for a char-level model: log2 of its perplexity."""
    return math.log2(perplexity)


def classification_metrics(num_classes: int, prefix: str) -> MetricCollection:
    """Accuracy and macro F1 over a split, summed across ranks by torchmetrics."""
    return MetricCollection(
        {
            "accuracy": Accuracy(task="multiclass", num_classes=num_classes),
            "macro_f1": F1Score(task="multiclass", num_classes=num_classes, average="macro"),
        },
        prefix=prefix,
    )


def confusion_matrix(num_classes: int) -> ConfusionMatrix:
    return ConfusionMatrix(task="multiclass", num_classes=num_classes)


def corpus_bleu(hypotheses: list[str], references: list[str]) -> tuple[float, str]:
    """sacrebleu's corpus BLEU on detokenised text, and its signature string."""
    bleu = BLEU()
    score = bleu.corpus_score(hypotheses, [references])
    return score.score, str(bleu.get_signature())

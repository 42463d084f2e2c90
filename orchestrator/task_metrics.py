"""What each task is judged by: names only, kept apart from the tasks' code so that the
processes needing just these names (the launching driver, a sweep's trial actors) never
import torch and Lightning (seconds per sweep trial, benchmarks/RESULTS.md)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TaskMetrics:
    monitor: str  # validation metric that ranks checkpoints
    mode: str  # "min" or "max"
    # printed at the end of a launch: val_* and test_* metrics whose names start so
    summary: tuple[str, ...]
    # Generating tasks: the test metric at beam size k, as a template ("test_bleu_beam{k}");
    # a sweep can then make beam size an evaluation axis.
    beam_metric: str | None = None
    # what `train_tokens_per_sec` counts for the task, as the driver's progress line says it
    throughput_unit: str = "tokens"


_CAPTIONING = TaskMetrics("val_cider_d", "max", ("cider_d", "bleu_4", "meteor"),
                          "test_cider_d_beam{k}")

TASK_METRICS: dict[str, TaskMetrics] = {
    "language_model": TaskMetrics("val_perplexity", "min", ("perplexity", "bpc")),
    "sentiment": TaskMetrics("val_accuracy", "max", ("accuracy", "macro_f1")),
    "translation": TaskMetrics("val_bleu", "max", ("bleu", "perplexity"), "test_bleu_beam{k}"),
    "image_captioning": _CAPTIONING,
    "video_captioning": _CAPTIONING,
    "video_frame_classification": TaskMetrics("val_frame_accuracy", "max",
                                              ("frame_accuracy", "frame_macro_f1"),
                                              throughput_unit="frames"),
}

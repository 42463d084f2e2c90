"""Which config keys a task reads: what a run logs as its MLflow params.

One `model`, `data`, `eval` and `generate` section serves every task (config.py), so a run's
full config holds keys its task never reads (a language model's `model.encoder`). Logged as
params they mislead and crowd the comparison table; `task_params` leaves them out. The
full config stays in the run's config.yaml artifact and in every checkpoint.
Light on purpose: the launching driver imports it (no torch).
"""

from __future__ import annotations

from typing import Any

from orchestrator.config import DECODER_TASKS, ExperimentConfig, flatten

CAPTIONING = ("image_captioning", "video_captioning")
VIDEO = ("video_captioning", "video_frame_classification")
FRAME_READERS = (*CAPTIONING, "video_frame_classification")  # tasks with an image encoder

# Keys (or sections, ending in ".") that only these tasks read; every other key is shared.
# tests/orchestrator/test_task_params.py checks the model keys against the architectures.
TASK_ONLY_KEYS: dict[str, tuple[str, ...]] = {
    "model.embedding_dim": ("language_model", "sentiment", "translation", *CAPTIONING),
    "model.tie_weights": ("language_model", "translation"),
    "model.init_range": ("language_model", "translation"),
    "model.share_embeddings": ("translation",),
    "model.bidirectional": ("sentiment", "translation", "video_frame_classification"),
    "model.pooling": ("sentiment",),
    "model.attention": DECODER_TASKS,
    "model.encoder": FRAME_READERS,
    "model.encoder_weights": FRAME_READERS,
    "model.freeze_encoder": FRAME_READERS,
    "model.visual_attention": CAPTIONING,
    "model.feature_as": ("image_captioning",),
    "model.vectors": ("sentiment",),
    "model.freeze_vectors": ("sentiment",),
    "model.input_feeding": ("translation",),
    "model.label_smoothing": ("translation",),
    "data.bptt": ("language_model",),
    "data.carry_hidden": ("language_model",),
    "data.max_tokens": ("sentiment", *DECODER_TASKS),
    "data.image_size": FRAME_READERS,
    "data.frames": VIDEO,
    "eval.meteor": CAPTIONING,
    "eval.replace_unk": ("translation",),
    "eval.": DECODER_TASKS,
    "train.scheduled_sampling.": DECODER_TASKS,
    "train.objective": DECODER_TASKS,
    "train.scst.": DECODER_TASKS,
    "generate.prompts": ("language_model", "translation", "sentiment"),
    "generate.": ("language_model",),
}


def applies(key: str, task: str) -> bool:
    """Whether `task` reads the dotted `key`: the most specific rule decides."""
    rules = [rule for rule in TASK_ONLY_KEYS
             if key == rule or (rule.endswith(".") and key.startswith(rule))]
    if not rules:
        return True
    return task in TASK_ONLY_KEYS[max(rules, key=len)]


def task_params(config: ExperimentConfig) -> dict[str, Any]:
    """The flattened config without the keys its task does not read."""
    return {key: value for key, value in flatten(config).items() if applies(key, config.task)}

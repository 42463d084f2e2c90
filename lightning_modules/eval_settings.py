"""How a generating task (translation, captioning) is evaluated: the `eval` config section,
typed, and the one way to change it on a module.

The module stores the section as a plain dict hyperparameter (a checkpoint then loads
weights-only, with no class of ours to unpickle) and reads it through `EvalSettings`.
orchestrator/config.py's EvalConfig holds every default and check; this has none.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class EvalSettings:
    beam_sizes: list[int]  # test metrics at each
    length_penalty: str  # none, average or gnmt
    alpha: float  # of the GNMT length penalty
    max_length: int
    max_length_ratio: float | None  # of the source length (translation)
    no_repeat_ngram_size: int
    ban_unk: bool  # never write the unknown-word token
    # validation batches decoded (greedy) each epoch; 0 while a Ray task scores each
    # epoch's checkpoint on the whole split (train.background_validation)
    val_bleu_batches: int
    meteor: bool  # captioning: also METEOR (needs Java)
    # translation: each <unk> becomes the most-attended source token; a default, so that
    # checkpoints saved before it load
    replace_unk: bool = False


class EvaluatedWithSettings:
    """Mixin for a LightningModule that decodes: `eval_settings`, changed only through
    `set_eval_settings` (by `orchestrator eval` and a sweep's evaluation variants)."""

    eval_settings: EvalSettings

    def set_eval_settings(self, **changes: Any) -> None:
        """Replace some settings; a key the module does not have is an error."""
        known = {field.name for field in dataclasses.fields(EvalSettings)}
        unknown = sorted(set(changes) - known)
        if unknown:
            raise ValueError(f"unknown eval settings {', '.join(unknown)} "
                             f"(valid: {', '.join(sorted(known))})")
        self.eval_settings = dataclasses.replace(self.eval_settings, **changes)

"""The evaluation grid each trained model meets: a sweep's `evaluate` axes.

Evaluation axes never reach Tune: beam sizes are decoded in one test pass
(`eval.beam_sizes`), and every combination of the other eval keys is one more test pass of
the same weights (an evaluation variant). Free of Ray Tune: Train workers import it.
"""

from __future__ import annotations

import itertools
import re
from typing import Any

from orchestrator.tuning.sweep_config import BEAM_AXIS, SweepConfig


def beam_sizes(sweep: SweepConfig) -> list[int] | None:
    """The beam sizes every model is decoded with, or None when beam is not an axis."""
    values = sweep.evaluate.get(BEAM_AXIS)
    return [int(value) for value in values] if values is not None else None


def evaluation_variants(sweep: SweepConfig) -> list[dict[str, Any]]:
    """Every combination of the non-beam evaluation axes, as eval-section overrides
    ({"alpha": 0.6}); [{}] when there are none, i.e. one test pass."""
    axes = {key.removeprefix("eval."): values
            for key, values in sweep.evaluate.items() if key != BEAM_AXIS}
    names = list(axes)
    return [dict(zip(names, combo, strict=True))
            for combo in itertools.product(*(axes[name] for name in names))]


def variant_prefix(variant: dict[str, Any]) -> str:
    """Test metrics of an evaluation variant are logged as `{prefix}test_...`, e.g.
    `alpha_0.6/test_bleu_beam5`; the plain names when there is no variant."""
    parts = [re.sub(r"[^\w.-]", "_", f"{key}_{value}") for key, value in variant.items()]
    return "-".join(parts) + "/" if parts else ""

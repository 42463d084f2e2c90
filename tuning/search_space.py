"""Sweep axes -> Ray Tune's search space, and the evaluation grid each trained model meets.

Training axes (`space`) become Tune samplers over dotted config keys. Evaluation axes
(`evaluate`) never reach Tune: beam sizes are decoded in one test pass (`eval.beam_sizes`),
and every combination of the other eval keys is one more test pass of the same weights.
"""

from __future__ import annotations

import itertools
import re
from typing import Any

from ray import tune

from orchestrator.tuning.sweep_config import BEAM_AXIS, SweepConfig

_SAMPLERS = {
    "grid": tune.grid_search,
    "choice": tune.choice,
    "uniform": lambda bounds: tune.uniform(*bounds),
    "loguniform": lambda bounds: tune.loguniform(*bounds),
}


def param_space(sweep: SweepConfig) -> dict[str, Any]:
    """Dotted key -> Tune sampler, e.g. {"model.cell": tune.grid_search([...])}."""
    return {key: _SAMPLERS[sampler](values)
            for key, spec in sweep.space.items() for sampler, values in spec.items()}


def pbt_mutations(sweep: SweepConfig) -> dict[str, Any]:
    """What PBT perturbs: each axis' values (a list: moves to a neighbour) or range
    (a distribution: scaled by 0.8 or 1.2, or resampled)."""
    mutations = {}
    for key, spec in sweep.space.items():
        sampler, values = next(iter(spec.items()))
        mutations[key] = values if sampler in ("grid", "choice") else _SAMPLERS[sampler](values)
    return mutations


def expected_models(sweep: SweepConfig) -> int:
    """How many models the sweep trains: the grid's size times num_samples."""
    grid = 1
    for spec in sweep.space.values():
        if "grid" in spec:
            grid *= len(spec["grid"])
    return grid * sweep.num_samples


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

"""Sweep training axes -> Ray Tune's search space: Tune samplers over dotted config keys.

The evaluation axes, which never reach Tune, are in `evaluation_axes.py`.
"""

from __future__ import annotations

from typing import Any

from ray import tune

from orchestrator.tuning.sweep_config import SweepConfig

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

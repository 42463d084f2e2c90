"""The sweep file: a base experiment, the axes to search, and how to search them.

    name: lm-cell-clip
    base: ../quickstart.yaml          # an experiment config, relative to this file
    overrides: {train.max_epochs: 4}  # dotted keys applied to the base
    space:                            # training axes: one model per combination
      model.cell: {grid: [rnn, gru, lstm]}
      optim.clip: {grid: [0.5, 5.0]}
      optim.lr: {loguniform: [0.001, 0.01]}
    evaluate:                         # evaluation axes: every model is decoded with each
      eval.beam_size: [1, 3, 5, 10]
    scheduler: {name: asha, grace_period: 1}   # or {name: pbt, perturbation_interval: 1}
    max_concurrent_trials: 2
    resources: {workers_per_trial: 1, cpus_per_worker: 1}

Only the shape is checked here; whether the keys and values fit the experiment schema is
checked by the caller, which owns that schema.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

SAMPLERS = ("grid", "choice", "uniform", "loguniform")
# What PBT may change in a running model: the weights it clones must still fit.
PBT_MUTABLE = ("optim.lr", "optim.weight_decay", "optim.clip", "optim.lr_decay",
               "model.dropout", "model.label_smoothing", "data.batch_size")
BEAM_AXIS = "eval.beam_size"  # stands for the list eval.beam_sizes: decoded in one pass


class SweepError(ValueError):
    """A sweep file or sweep folder that cannot be used; the message says how to fix it."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class SchedulerConfig(_Strict):
    # asha stops weak trials early; pbt copies strong trials' weights and perturbs their
    # hyperparameters; none runs every trial to the end.
    name: Literal["asha", "pbt", "none"] = "asha"
    # asha: epochs every trial runs before it can be stopped, and the rung spacing.
    grace_period: int = Field(1, ge=1)
    reduction_factor: float = Field(2.0, gt=1.0)
    # pbt: epochs between exploit/explore steps; the share of trials that clone a trial
    # of the top share (weights and hyperparameters, then perturbed).
    perturbation_interval: int = Field(1, ge=1)
    quantile_fraction: float = Field(0.25, gt=0.0, le=0.5)
    # pbt: true pauses each trial at every interval until all have reached it, so trials
    # that started late are still compared (each pause restarts the trial's Train run).
    synch: bool = False


class ResourcesConfig(_Strict):
    workers_per_trial: int = Field(1, ge=1)
    cpus_per_worker: float = Field(1.0, gt=0.0)
    gpus_per_worker: float = Field(0.0, ge=0.0)


class SweepConfig(_Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    base: str | None = None  # experiment config file; null: the defaults
    overrides: dict[str, Any] = Field(default_factory=dict)
    space: dict[str, dict[str, Any]] = Field(min_length=1)
    evaluate: dict[str, list[Any]] = Field(default_factory=dict)
    num_samples: int = Field(1, ge=1)  # draws of the random axes (x the grid)
    scheduler: SchedulerConfig = Field(default_factory=SchedulerConfig)
    # Trials at once; null: as many as the cluster's CPUs (GPUs) hold.
    max_concurrent_trials: int | None = Field(None, ge=1)
    resources: ResourcesConfig = Field(default_factory=ResourcesConfig)
    metric: str | None = None  # null: the task's validation metric
    mode: Literal["min", "max"] | None = None
    storage_path: str = "sweeps"  # the sweep folder is storage_path/name

    @model_validator(mode="after")
    def _axes_are_well_formed(self) -> SweepConfig:
        for key, spec in self.space.items():
            check_sampler(key, spec)
            if key.startswith("eval."):
                raise ValueError(f"space.{key}: evaluation keys go under `evaluate:`, so each "
                                 "trained model is decoded with every value")
        for key, values in self.evaluate.items():
            if not key.startswith("eval."):
                raise ValueError(f"evaluate.{key}: only eval.* keys (and {BEAM_AXIS}) are "
                                 "evaluation axes; training keys go under `space:`")
            if not values:
                raise ValueError(f"evaluate.{key} needs at least one value")
        if self.scheduler.name == "pbt":
            for key in self.space:
                if key not in PBT_MUTABLE:
                    raise ValueError(
                        f"space.{key}: pbt changes hyperparameters while models train, and "
                        f"{key} cannot change in a model that is training; pbt can change "
                        f"{', '.join(PBT_MUTABLE)}. Put {key} in `overrides`, or sweep it "
                        "with scheduler asha or none")
        if (self.metric is None) != (self.mode is None):
            raise ValueError("give both metric and mode, or neither (the task's default)")
        return self


def check_sampler(key: str, spec: dict[str, Any]) -> None:
    """One sampler per axis: {grid: [...]}, {choice: [...]}, {uniform|loguniform: [lo, hi]}."""
    if len(spec) != 1 or next(iter(spec)) not in SAMPLERS:
        raise ValueError(f"space.{key} must be one of {{grid: [...]}}, {{choice: [...]}}, "
                         f"{{uniform: [low, high]}}, {{loguniform: [low, high]}} (got {spec})")
    sampler, values = next(iter(spec.items()))
    if not isinstance(values, list) or not values:
        raise ValueError(f"space.{key}.{sampler} needs a non-empty list (got {values!r})")
    if sampler in ("uniform", "loguniform"):
        if len(values) != 2 or not all(isinstance(v, int | float) for v in values):
            raise ValueError(f"space.{key}.{sampler} needs [low, high] numbers (got {values})")
        low, high = values
        if not low < high or (sampler == "loguniform" and low <= 0):
            raise ValueError(f"space.{key}.{sampler}: need 0 < low < high for loguniform, "
                             f"low < high for uniform (got {values})")


def load_sweep(path: str | Path) -> SweepConfig:
    """Read and shape-check a sweep file; the base path becomes absolute."""
    path = Path(path)
    if not path.is_file():
        raise SweepError(f"sweep file {path} does not exist")
    try:
        raw = yaml.safe_load(path.read_text()) or {}
        sweep = SweepConfig.model_validate(raw)
    except yaml.YAMLError as exc:
        raise SweepError(f"sweep file {path} is not valid YAML: {exc}") from None
    except ValidationError as exc:
        raise SweepError(f"sweep file {path}: {_describe(exc)}") from None
    if sweep.base is not None:
        base = (path.parent / sweep.base).resolve()
        if not base.is_file():
            raise SweepError(f"sweep file {path}: base {sweep.base} not found (looked at {base})")
        sweep.base = str(base)
    return sweep


_SECTIONS: dict[str, type[BaseModel]] = {
    "scheduler": SchedulerConfig, "resources": ResourcesConfig,
}


def _describe(exc: ValidationError) -> str:
    problems = []
    for error in exc.errors():
        key = ".".join(str(part) for part in error["loc"])
        if error["type"] == "value_error":
            problems.append(str(error["ctx"]["error"]))
        elif error["type"] == "extra_forbidden":
            section = _SECTIONS.get(str(error["loc"][0]), SweepConfig) if len(
                error["loc"]) > 1 else SweepConfig
            valid = ", ".join(section.model_fields)
            problems.append(f"unknown key {key} (valid keys: {valid})")
        else:
            problems.append(f"{key}: {error['msg'].lower()} (got {error.get('input')!r})")
    return "; ".join(problems)

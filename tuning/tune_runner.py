"""Run (or resume) a sweep with Ray Tune.

Each trial is a Tune function trainable that runs a whole Ray Train run; the caller hands
that function in, so this module knows nothing of tasks or configs. Trials claim one unit
of a custom resource, `sweep_trial_slot`, instead of a fraction of a CPU: a fractional CPU
would let every trial start at once and then wait forever for its Train workers' CPUs.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ray import tune
from ray.tune.schedulers import (
    ASHAScheduler,
    FIFOScheduler,
    PopulationBasedTraining,
    TrialScheduler,
)

from orchestrator.tuning import mlflow_runs
from orchestrator.tuning.search_space import param_space, pbt_mutations
from orchestrator.tuning.sweep_config import SweepConfig, SweepError

SLOT_RESOURCE = "sweep_trial_slot"
PLAN_FILE = "sweep.json"
TIME_ATTR = "epoch"  # schedulers count epochs, which a resumed trial keeps, not iterations


@dataclass
class SweepPlan:
    """Everything about a sweep that outlives the process: saved as sweep.json in the sweep
    folder, read again by `--resume` and by the report."""

    name: str
    task: str
    metric: str
    mode: str
    max_epochs: int
    models_expected: int
    tracking_uri: str
    experiment: str
    parent_run_id: str
    sweep: dict[str, Any]  # the sweep file, as validated
    base_config: dict[str, Any]  # the experiment every trial starts from
    beam_metric: str | None = None  # "test_bleu_beam{k}" where beam size is an axis
    beam_sizes: list[int] | None = None
    eval_variants: list[dict[str, Any]] = field(default_factory=lambda: [{}])

    @property
    def config(self) -> SweepConfig:
        return SweepConfig.model_validate(self.sweep)


def save_plan(folder: Path, plan: SweepPlan) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / PLAN_FILE).write_text(json.dumps(asdict(plan), indent=2))


def load_plan(folder: Path) -> SweepPlan:
    path = folder / PLAN_FILE
    if not path.is_file():
        raise SweepError(f"{folder} is not a sweep folder: it has no {PLAN_FILE} "
                         "(it is written when `orchestrator sweep` starts)")
    return SweepPlan(**json.loads(path.read_text()))


class _OnEpochsDone:
    """Schedulers here count epochs done: Train reports the 0-based `epoch`, so its
    result is shifted by one (grace_period 1 judges a trial after its first epoch). A trial
    past its last epoch is left alone: it is done training and still owes its test pass
    (a stop would lose it, a PBT clone would restart it with no epoch left)."""

    def __init__(self, max_epochs: int, **settings: Any):
        super().__init__(**settings)
        self.max_epochs = max_epochs

    def on_trial_result(self, tune_controller: Any, trial: Any, result: dict) -> str:
        if TIME_ATTR in result and result[TIME_ATTR] + 1 >= self.max_epochs:
            return TrialScheduler.CONTINUE
        return super().on_trial_result(tune_controller, trial, _epochs_done(result))


class EpochASHA(_OnEpochsDone, ASHAScheduler):
    def on_trial_complete(self, tune_controller: Any, trial: Any, result: dict) -> None:
        super().on_trial_complete(tune_controller, trial, _epochs_done(result))


class EpochPBT(_OnEpochsDone, PopulationBasedTraining):
    pass


def _epochs_done(result: dict) -> dict:
    return {**result, TIME_ATTR: result[TIME_ATTR] + 1} if TIME_ATTR in result else result


def make_scheduler(sweep: SweepConfig, max_epochs: int) -> TrialScheduler:
    settings = sweep.scheduler
    if settings.name == "none":
        return FIFOScheduler()
    if settings.name == "pbt":
        return EpochPBT(max_epochs, time_attr=TIME_ATTR,
                        perturbation_interval=settings.perturbation_interval,
                        quantile_fraction=settings.quantile_fraction,
                        synch=settings.synch,
                        hyperparam_mutations=pbt_mutations(sweep))
    return EpochASHA(max_epochs, time_attr=TIME_ATTR, max_t=max_epochs,
                     grace_period=min(settings.grace_period, max_epochs),
                     reduction_factor=settings.reduction_factor)


def trial_resources() -> dict[str, float]:
    """What the trial's own actor holds: a slot, no CPU (its Train workers take those)."""
    return {"CPU": 0, SLOT_RESOURCE: 1}


class TrialRunsCallback(tune.Callback):
    """Ends each trial's MLflow child run once Tune is done with the trial, so runs of
    trials stopped early by the scheduler are never left RUNNING."""

    def __init__(self, tracking_uri: str, parent_run_id: str, max_epochs: int):
        self.tracking_uri = tracking_uri
        self.parent_run_id = parent_run_id
        self.max_epochs = max_epochs

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        epochs = int((trial.last_result or {}).get(TIME_ATTR, -1)) + 1
        stopped = epochs < self.max_epochs
        mlflow_runs.end_child(self.tracking_uri, self.parent_run_id, trial.trial_id,
                             "KILLED" if stopped else "FINISHED",
                             {mlflow_runs.STOPPED_EARLY_TAG: str(stopped).lower(),
                              "sweep.epochs_trained": str(epochs)})

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        mlflow_runs.end_child(self.tracking_uri, self.parent_run_id, trial.trial_id, "FAILED")


def run_sweep(
    plan: SweepPlan, folder: Path, trainable: Callable[[dict[str, Any]], None], resume: bool
) -> tune.ResultGrid:
    """Fit a new Tuner in `folder`, or restore the one there: finished trials stay
    finished, unfinished and errored ones continue from their last checkpoints."""
    sweep = plan.config
    # A trial's last report holds its test metrics and may lack the validation metric (a
    # trial resumed after its last epoch validates nothing): not an error for a sweep.
    os.environ["TUNE_DISABLE_STRICT_METRIC_CHECKING"] = "1"
    runnable = tune.with_resources(trainable, trial_resources())
    if resume:
        tuner = tune.Tuner.restore(str(folder), runnable, resume_unfinished=True,
                                   resume_errored=True, param_space=param_space(sweep))
    else:
        tuner = tune.Tuner(
            runnable,
            param_space=param_space(sweep),
            tune_config=tune.TuneConfig(
                metric=plan.metric, mode=plan.mode, num_samples=sweep.num_samples,
                scheduler=make_scheduler(sweep, plan.max_epochs),
                max_concurrent_trials=sweep.max_concurrent_trials,
                # A finished trial's actor runs the next trial (no new process, no
                # imports again: ~3 s a trial, benchmarks/RESULTS.md), but only where
                # trials always run to their end: a trial ASHA stops or PBT pauses is still
                # inside its Train run, and handing its actor on would fail the next trial.
                reuse_actors=sweep.scheduler.name == "none",
            ),
            run_config=tune.RunConfig(
                name=folder.name, storage_path=str(folder.parent),
                callbacks=[TrialRunsCallback(plan.tracking_uri, plan.parent_run_id,
                                             plan.max_epochs)],
                verbose=1,
            ),
        )
    return tuner.fit()


def finished(folder: Path, plan: SweepPlan) -> bool:
    """Did every trial end (done, stopped early, or failed), or was the sweep interrupted?

    Read from the experiment state Tune saves when its loop ends, not from the ResultGrid
    `fit` returns: after Ctrl-C, Tune's cleanup marks each trial it stops TERMINATED, so
    the ResultGrid shows a sweep interrupted during its last trial as finished."""
    trials = tune.ExperimentAnalysis(str(folder)).trials
    ended = [trial for trial in trials if trial.status in ("TERMINATED", "ERROR")]
    return len(ended) >= plan.models_expected

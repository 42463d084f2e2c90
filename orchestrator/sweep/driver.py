"""`orchestrator sweep`: a Ray Tune sweep whose trials are `launch`'s own Train runs.

This file checks a sweep against the experiment schema before anything starts and hands
Tune the trial function (`sweep/trial.py`); `orchestrator.tuning` runs Tune, MLflow runs
and the report.
"""

from __future__ import annotations

import functools
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlflow.tracking import MlflowClient

from orchestrator import tracking
from orchestrator.config import ExperimentConfig, load_config, with_values
from orchestrator.errors import OrchestratorError
from orchestrator.inputs import (
    check_initial_weights,
    check_model_files,
    check_ray_address,
    check_storage,
    connect_ray,
    ensure_dataset,
    resolve_paths,
)
from orchestrator.run_description import DESCRIPTION_TAG, standard_tags, started_by
from orchestrator.sweep.trial import run_trial
from orchestrator.task_metrics import TASK_METRICS
from orchestrator.tuning import mlflow_runs, report
from orchestrator.tuning.evaluation_axes import beam_sizes, evaluation_variants
from orchestrator.tuning.search_space import expected_models
from orchestrator.tuning.sweep_config import BEAM_AXIS, SweepConfig, SweepError, load_sweep
from orchestrator.tuning.tune_runner import (
    SLOT_RESOURCE,
    SweepPlan,
    finished,
    load_plan,
    run_sweep,
    save_plan,
)


@dataclass
class SweepOutcome:
    folder: Path
    finished: bool
    parent_run_id: str
    report_html: Path | None
    failed_trials: int = 0  # trials that ended in an error (their causes are in the report)


def sweep(path: str | None = None, resume: str | None = None,
          address: str | None = None) -> SweepOutcome:
    """Start the sweep in `path`, or resume the one in folder `resume`."""
    check_ray_address(address)  # before the plan makes data and the parent run
    if resume:
        folder = Path(resume).resolve()
        plan = load_plan(folder)
        tracking.check_reachable(plan.tracking_uri)
        mlflow_runs.reopen(plan.tracking_uri, plan.parent_run_id)
    else:
        plan, folder = _plan(load_sweep(path))
    _connect_ray(address, plan.config)
    trainable = functools.partial(run_trial, folder=str(folder))  # pickled by reference
    results = run_sweep(plan, folder, trainable, resume=bool(resume))
    return _finish(plan, folder, finished(folder, plan), results.num_errors)


def check_sweep(sweep: SweepConfig) -> ExperimentConfig:
    """The base experiment, once every axis value is known to make a valid config: a typo
    fails in a second rather than in trial 7."""
    base = resolve_paths(_with_values(load_config(sweep.base), sweep.overrides, "overrides"))
    _check_axes(sweep, base)
    if base.train.background_validation or "train.background_validation" in sweep.space:
        # a trial's scheduler ranks it at each epoch's report, before a background score
        raise OrchestratorError("train.background_validation cannot be swept or set in a "
                                "sweep: its schedulers rank trials at each epoch's end, "
                                "before a background score exists; leave it false")
    if sweep.evaluate and TASK_METRICS[base.task].beam_metric is None:
        raise OrchestratorError(f"task {base.task} does not decode, so it has no evaluation "
                                f"axes; remove `evaluate:` ({', '.join(sweep.evaluate)})")
    return base


def _plan(sweep: SweepConfig) -> tuple[SweepPlan, Path]:
    """Check the sweep, make the data and the parent run, all before any trial starts."""
    base = check_sweep(sweep)
    task = TASK_METRICS[base.task]
    beams = beam_sizes(sweep)
    folder = Path(sweep.storage_path).resolve() / sweep.name
    if (folder / "sweep.json").exists():
        raise OrchestratorError(f"sweep folder {folder} exists; continue it with `orchestrator "
                                f"sweep --resume {folder}` or give the sweep another name")
    uri = tracking.resolve_tracking_uri(base.tracking)
    tracking.check_reachable(uri)
    check_storage(str(folder), uri)
    check_model_files(base)
    ensure_dataset(base)  # once here, so trials never race to generate sample data
    check_initial_weights(base)
    parent = tracking.start_run(
        uri, base.tracking.experiment, sweep.name,
        tags={**standard_tags(base, started_by(), tracking.git_commit()), "sweep": "parent"},
    )
    plan = SweepPlan(
        name=sweep.name, task=base.task, metric=sweep.metric or task.monitor,
        mode=sweep.mode or task.mode, max_epochs=base.train.max_epochs,
        models_expected=expected_models(sweep), tracking_uri=uri,
        experiment=base.tracking.experiment, parent_run_id=parent,
        sweep=sweep.model_dump(), base_config=_trial_base(base, sweep, folder).model_dump(),
        beam_metric=task.beam_metric if beams else None, beam_sizes=beams,
        eval_variants=evaluation_variants(sweep),
    )
    save_plan(folder, plan)
    _log_plan(plan)
    return plan, folder


def _check_axes(sweep: SweepConfig, base: ExperimentConfig) -> None:
    """Every value an axis can take must make a valid config (bounds for the ranges)."""
    for key, spec in sweep.space.items():
        for sampler, values in spec.items():
            for value in values:
                _with_values(base, {key: value}, f"space.{key}")
            if sampler in ("uniform", "loguniform"):
                _check_fractions_fit(base, key, sampler, values)
    for key, values in sweep.evaluate.items():
        if key == BEAM_AXIS:
            _with_values(base, {"eval.beam_sizes": values}, f"evaluate.{key}")
        else:
            for value in values:
                _with_values(base, {key: value}, f"evaluate.{key}")


def _check_fractions_fit(config: ExperimentConfig, key: str, sampler: str,
                        bounds: list[float]) -> None:
    """A range samples fractions: valid bounds say nothing about a key of whole numbers."""
    low, high = bounds
    inside = float(low) + 0.37 * (high - low)
    try:
        with_values(config, {key: inside}, f"space.{key}")
    except OrchestratorError:
        raise SweepError(
            f"space.{key}.{sampler} samples fractions such as {inside:.4g}, which {key} does "
            f"not take (whole numbers); use {{grid: [...]}} or {{choice: [...]}} of its values"
        ) from None


def _with_values(config: ExperimentConfig, values: dict[str, Any], where: str):
    try:
        return with_values(config, values, where)
    except OrchestratorError as exc:
        raise SweepError(str(exc)) from None


def _trial_base(base: ExperimentConfig, sweep: SweepConfig, folder: Path) -> ExperimentConfig:
    """The base config as every trial runs it: the sweep's resources and beam sizes, Train
    checkpoints inside the sweep folder, no progress bars interleaving in Tune's output."""
    resources = sweep.resources
    values: dict[str, Any] = {
        "ray.num_workers": resources.workers_per_trial,
        "ray.cpus_per_worker": resources.cpus_per_worker,
        "ray.gpus_per_worker": resources.gpus_per_worker,
        "ray.use_gpu": resources.gpus_per_worker > 0,
        "ray.storage_path": str(folder / "train"),
        "train.progress_bar": False,
    }
    if BEAM_AXIS in sweep.evaluate:
        values["eval.beam_sizes"] = beam_sizes(sweep)
    if sweep.scheduler.name == "pbt":  # Tune copies each one, maybe after the next epoch
        values["ray.checkpoints_to_keep"] = None
    return with_values(base, values, "sweep")


def _log_plan(plan: SweepPlan) -> None:
    client = MlflowClient(plan.tracking_uri)
    client.log_dict(plan.parent_run_id, plan.sweep, "sweep.yaml")
    client.log_dict(plan.parent_run_id, plan.base_config, "base_config.yaml")
    scheduler = plan.sweep["scheduler"]
    tracking.log_params(plan.tracking_uri, plan.parent_run_id, {
        "metric": plan.metric, "mode": plan.mode, "scheduler": scheduler["name"],
        "num_samples": plan.sweep["num_samples"], "models_expected": plan.models_expected,
        "space": ", ".join(plan.sweep["space"]),
        "evaluate": ", ".join(plan.sweep["evaluate"]) or "-",
    })


def _connect_ray(address: str | None, sweep: SweepConfig) -> None:
    """Local Ray gets one trial slot per trial that fits its CPUs (or the sweep's cap);
    a cluster must advertise the slots itself (`ray start --resources`)."""
    import ray

    per_trial = sweep.resources.workers_per_trial * sweep.resources.cpus_per_worker
    slots = sweep.max_concurrent_trials or max(1, math.floor((os.cpu_count() or 1) / per_trial))
    connect_ray(address, resources={SLOT_RESOURCE: slots})
    if ray.cluster_resources().get(SLOT_RESOURCE, 0) < 1:
        raise OrchestratorError(
            f"the Ray cluster has no {SLOT_RESOURCE!r} resource, which caps how many trials "
            f"run at once; start its nodes with `ray start --resources "
            f"'{{\"{SLOT_RESOURCE}\": N}}'` (N trials per node)"
        )


def _finish(plan: SweepPlan, folder: Path, done: bool, failed_trials: int) -> SweepOutcome:
    """Write the report and end the parent run; an interrupted sweep ends KILLED and
    leaves no child run RUNNING."""
    uri = plan.tracking_uri
    client = MlflowClient(uri)
    if not done:
        mlflow_runs.end_running_children(uri, plan.parent_run_id)
        client.set_terminated(plan.parent_run_id, "KILLED")
        return SweepOutcome(folder, False, plan.parent_run_id, None)
    written = report.write_report(folder)
    for path in written.files:  # report_plots/ kept, so report.md's image links resolve
        where = path.parent.relative_to(folder).as_posix()
        client.log_artifact(plan.parent_run_id, str(path),
                            "report" if where == "." else f"report/{where}")
    client.set_tag(plan.parent_run_id, DESCRIPTION_TAG, _parent_description(plan, written))
    if written.best:
        client.log_dict(plan.parent_run_id, written.best, "best_config.json")
    client.set_tag(plan.parent_run_id, "sweep.failed_trials", str(failed_trials))
    client.set_terminated(plan.parent_run_id, "FINISHED")
    return SweepOutcome(folder, True, plan.parent_run_id, written.html, failed_trials)


def _parent_description(plan: SweepPlan, written: report.WrittenReport) -> str:
    """The parent run page's description: the ranking with a link to each trial's run
    (the report's HTML opens in MLflow's sandboxed viewer, where links cannot navigate)."""
    client = MlflowClient(plan.tracking_uri)
    runs = {run.data.tags.get(mlflow_runs.TRIAL_TAG): run
            for run in mlflow_runs.children(client, plan.parent_run_id)}
    lines = [f"**Sweep `{plan.name}`**: {plan.task}, ranked by `{plan.metric}` ({plan.mode}). "
             "The full report is the artifact `report/report.html` (`report/report.md`).", "",
             f"| rank | trial run | {plan.metric} | status |", "| --- | --- | --- | --- |"]
    for rank, row in enumerate(written.ranking.to_dict("records"), start=1):
        run = runs.get(row["trial"])
        link = (f"[{run.info.run_name}](#/experiments/{run.info.experiment_id}/runs/"
                f"{run.info.run_id})" if run is not None else row["trial"])
        value = row.get(plan.metric)
        shown = f"{value:.4g}" if isinstance(value, float) and value == value else "-"
        lines.append(f"| {rank} | {link} | {shown} | {row['status']} |")
    started = client.get_run(plan.parent_run_id).data.tags.get(DESCRIPTION_TAG, "")
    return "\n".join([*lines, "", started])

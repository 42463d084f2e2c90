"""A sweep trial: what each Tune trial actor runs.

Kept apart from `orchestrator.sweep.driver` (the driver's side: checks, the plan, the report) so
a trial actor imports neither the task registry nor Lightning: a fresh actor starts for
every trial, and those imports cost seconds each time (benchmarks/RESULTS.md).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mlflow.tracking import MlflowClient

from orchestrator import tracking
from orchestrator.config import ExperimentConfig, with_values
from orchestrator.datasets.manifest import load_manifest
from orchestrator.launch import train_in_run
from orchestrator.tuning import mlflow_runs
from orchestrator.tuning.forward_reports import fit_reporting_to_tune
from orchestrator.tuning.tune_runner import load_plan


def run_trial(params: dict[str, Any], folder: str) -> None:
    """One trial: the base config with this trial's axis values, trained like `launch`
    inside the trial's MLflow child run, with every Train report forwarded to Tune."""
    from ray import tune

    plan = load_plan(Path(folder))
    config = with_values(ExperimentConfig.model_validate(plan.base_config), params, "trial")
    context = tune.get_context()
    trial_id = context.get_trial_id()
    run_id = mlflow_runs.child_run(plan.tracking_uri, plan.parent_run_id, trial_id,
                                  context.get_trial_name())
    # Tune holds a checkpoint only under PBT: the one to clone (another trial's, with these
    # new values) or this trial's own after a pause. A new Train run starts from it; else
    # the same Train run name on a restart resumes from its own last checkpoint.
    start_from = tune.get_checkpoint()
    run_name = f"trial-{trial_id}"
    if start_from is not None:
        run_name += "-from-" + mlflow_runs.record_start(plan.tracking_uri, trial_id, run_id,
                                                       start_from, params)
    client = MlflowClient(plan.tracking_uri)
    succeeded = False
    try:
        fit_reporting_to_tune(
            lambda callbacks: train_in_run(
                config, plan.tracking_uri, run_id, run_name, load_manifest(config.data.path),
                callbacks=callbacks, eval_variants=plan.eval_variants, start_from=start_from),
            with_checkpoints=plan.config.scheduler.name == "pbt",
        )
        succeeded = True
    except Exception as exc:
        # the report's error column: the cause, not Ray's wrapping of it
        cause = " ".join(str(exc).split())[:500]
        tracking.through_busy_store(
            lambda: client.set_tag(run_id, mlflow_runs.ERROR_TAG, cause))
        raise
    finally:
        # a trial stopped by the scheduler fails on its way down: keep the driver's KILLED
        status = client.get_run(run_id).info.status
        if succeeded or status == "RUNNING":
            tracking.end_run(plan.tracking_uri, run_id, "FINISHED" if succeeded else "FAILED")

"""MLflow for a sweep: one parent run per sweep, one child run per trial.

A child run is found again by its trial id, so a trial restarted after an interruption
logs into the run it started, and the driver can end the runs of trials the scheduler
stopped (their actors are killed before they could end the runs themselves).
"""

from __future__ import annotations

from pathlib import PurePosixPath
from typing import Any

from mlflow.entities import RunStatus, RunTag
from mlflow.tracking import MlflowClient
from mlflow.utils.mlflow_tags import (
    MLFLOW_GIT_COMMIT,
    MLFLOW_PARENT_RUN_ID,
    MLFLOW_RUN_NAME,
    MLFLOW_SOURCE_NAME,
    MLFLOW_SOURCE_TYPE,
    MLFLOW_USER,
)

from orchestrator.run_description import DESCRIPTION_TAG

TRIAL_TAG = "sweep.trial_id"
ATTEMPTS_TAG = "sweep.trial_attempts"  # how often the trial's function started
STOPPED_EARLY_TAG = "sweep.stopped_early"
ERROR_TAG = "sweep.error"  # a failed trial's root cause, one line, for the report
CLONED_FROM_TAG = "sweep.cloned_from"  # PBT: the trial whose checkpoint it last continued
HISTORY_TAG = "sweep.pbt_history"  # PBT: every start from a checkpoint, with its values
_HISTORY_SEPARATOR = ": "  # a history line: donor/checkpoint_N: key=value, ...
# What a trial's run takes from the sweep's parent run: who started it, how, on what code.
INHERITED_TAGS = ("task", MLFLOW_SOURCE_NAME, MLFLOW_SOURCE_TYPE, MLFLOW_USER, MLFLOW_GIT_COMMIT)


def reopen(uri: str, run_id: str) -> None:
    """A resumed sweep logs into its old parent run again."""
    MlflowClient(uri).update_run(run_id, status=RunStatus.to_string(RunStatus.RUNNING))


def child_run(uri: str, parent_run_id: str, trial_id: str, trial_name: str) -> str:
    """The trial's child run: created on its first start, reopened on later ones."""
    client = MlflowClient(uri)
    parent = client.get_run(parent_run_id)
    existing = find_child(client, parent_run_id, trial_id)
    if existing is None:
        inherited = {key: value for key, value in parent.data.tags.items()
                     if key in INHERITED_TAGS}
        inherited[DESCRIPTION_TAG] = (f"Trial `{trial_name}` of sweep "
                                      f"`{parent.info.run_name}`.\n\n"
                                      + parent.data.tags.get(DESCRIPTION_TAG, ""))
        run = client.create_run(parent.info.experiment_id, tags={
            **inherited, MLFLOW_PARENT_RUN_ID: parent_run_id, TRIAL_TAG: trial_id,
            MLFLOW_RUN_NAME: trial_name, ATTEMPTS_TAG: "1",
        })
        return run.info.run_id
    attempts = int(existing.data.tags.get(ATTEMPTS_TAG, "1")) + 1
    client.set_tag(existing.info.run_id, ATTEMPTS_TAG, str(attempts))
    reopen(uri, existing.info.run_id)
    return existing.info.run_id


def record_start(uri: str, trial_id: str, run_id: str, checkpoint: Any,
                 params: dict[str, Any]) -> str:
    """A PBT trial starting from a Tune checkpoint: another trial's (a clone) or its own
    (PBT paused it to let others run). Tags whose it was and the values it now trains
    with (params keep the values the run started with). Returns a name for the new Train
    run, unique per checkpoint."""
    donor = checkpoint.get_metadata().get(TRIAL_TAG, "unknown")
    client = MlflowClient(uri)
    history = client.get_run(run_id).data.tags.get(HISTORY_TAG, "")
    values = ", ".join(f"{key}={value:.4g}" if isinstance(value, float) else f"{key}={value}"
                       for key, value in sorted(params.items()))
    checkpoint_name = PurePosixPath(checkpoint.path).name
    entry = f"{donor}/{checkpoint_name}{_HISTORY_SEPARATOR}{values}"
    tags = {HISTORY_TAG: f"{history}\n{entry}" if history else entry,
            **{f"pbt.{key}": str(value) for key, value in params.items()}}
    if donor != trial_id:
        tags[CLONED_FROM_TAG] = donor
    client.log_batch(run_id, tags=[RunTag(key, value) for key, value in tags.items()])
    return f"{donor}-{checkpoint_name}"


def pbt_starts(run: Any) -> list[tuple[str, str]]:
    """A child run's starts from a checkpoint, oldest first: (donor/checkpoint, values)."""
    history = run.data.tags.get(HISTORY_TAG, "")
    return [tuple(entry.split(_HISTORY_SEPARATOR, 1)) for entry in history.splitlines()]


def find_child(client: MlflowClient, parent_run_id: str, trial_id: str) -> Any | None:
    runs = children(client, parent_run_id, f"tags.`{TRIAL_TAG}` = '{trial_id}'")
    return runs[0] if runs else None


def children(client: MlflowClient, parent_run_id: str, extra_filter: str = "") -> list[Any]:
    parent = client.get_run(parent_run_id)
    query = f"tags.`{MLFLOW_PARENT_RUN_ID}` = '{parent_run_id}'"
    if extra_filter:
        query += f" and {extra_filter}"
    return client.search_runs([parent.info.experiment_id], query, max_results=10_000)


def end_child(uri: str, parent_run_id: str, trial_id: str, status: str,
              tags: dict[str, str] | None = None) -> None:
    """End a trial's run unless it already ended itself (FINISHED/FAILED). A trial the
    scheduler stopped may have marked itself FAILED while its process was torn down: the
    scheduler's verdict (KILLED) wins."""
    client = MlflowClient(uri)
    run = find_child(client, parent_run_id, trial_id)
    if run is None:
        return
    for key, value in (tags or {}).items():
        client.set_tag(run.info.run_id, key, value)
    if run.info.status == "RUNNING" or (status == "KILLED" and run.info.status == "FAILED"):
        client.set_terminated(run.info.run_id, status)


def end_running_children(uri: str, parent_run_id: str, status: str = "KILLED") -> None:
    """After an interrupted sweep: no child run is left RUNNING."""
    client = MlflowClient(uri)
    for run in children(client, parent_run_id, "attributes.status = 'RUNNING'"):
        client.set_terminated(run.info.run_id, status)

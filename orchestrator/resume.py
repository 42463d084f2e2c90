"""Continuing a launch's MLflow run: which run, whether it may be taken over, and what may
change on the way.

A launch's driver marks its run with where it runs (`orchestrator.driver`, host:pid) and a
heartbeat tag it renews while it lives. A run still RUNNING whose driver is gone (killed,
its machine lost) is stale: `--resume` takes it over, and `mark_stale_runs` ends the rest
as KILLED so the MLflow UI does not show them running forever. Training itself continues
from the Ray Train checkpoints under `ray.storage_path`/run name, which the run's name finds.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import yaml
from mlflow.entities import Run, RunStatus
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient
from pydantic import ValidationError

from orchestrator import tracking
from orchestrator.config import (
    ExperimentConfig,
    TrackingConfig,
    describe_validation_error,
    flatten,
    load_config,
    with_overrides,
)
from orchestrator.errors import OrchestratorError
from orchestrator.inputs import resolve_paths
from orchestrator.run_files import RUN_NAME_ENV, STORED_CONFIG_FILE
from orchestrator.task_metrics import TASK_METRICS
from orchestrator.tuning.mlflow_runs import TRIAL_TAG

DRIVER_TAG = "orchestrator.driver"  # host:pid of the launch driver that owns the run
HEARTBEAT_TAG = "orchestrator.heartbeat"  # unix time, renewed every HEARTBEAT_S
STALE_TAG = "orchestrator.stale"  # why a RUNNING run was ended as KILLED
RESUMES_TAG = "orchestrator.resumes"  # how often the run was continued
HEARTBEAT_S = 30.0
STALE_AFTER_S = 3 * HEARTBEAT_S  # three missed heartbeats: the driver is gone

# What a resumed run may change: how much to train, where and on how many workers, how
# it reports, and the test-time decoding that has not run yet. Everything else (model,
# optimiser, data, seed) would make the checkpoint's run a different experiment.
CHANGEABLE = ("train.max_epochs", "train.progress_bar", "train.log_every_n_steps",
              "data.num_workers", "ray.address", "ray.num_workers", "ray.min_workers",
              "ray.resize_check_s", "ray.cpus_per_worker",
              "ray.gpus_per_worker", "ray.use_gpu", "ray.max_failures",
              "ray.checkpoints_to_keep", "eval.", "generate.", "tracking.")


@dataclass(frozen=True)
class ResumePoint:
    """The run a launch continues, with the config it continues under."""

    run_id: str
    run_name: str
    config: ExperimentConfig


def find_run(client: MlflowClient, experiment: str, wanted: str) -> Run:
    """An MLflow run id, a run name (the newest of that name), or `last` (the newest
    launch in the experiment)."""
    try:
        return client.get_run(wanted)
    except MlflowException:
        pass
    where = f"tags.`{DRIVER_TAG}` != ''" if wanted == "last" else _named(wanted)
    run = _newest_run(client, experiment, where)
    if run is None:
        what = "no launch" if wanted == "last" else f"no run with id or name {wanted!r}"
        raise OrchestratorError(
            f"--resume: {what} in experiment {experiment!r} of this tracking store; give "
            "tracking.uri=... and tracking.experiment=... where the run was logged"
        )
    return run


def unfinished_pinned_run(client: MlflowClient, config: ExperimentConfig) -> ResumePoint | None:
    """A retried Kubernetes RayJob runs under the same pinned name (RUN_NAME_ENV): its
    unfinished MLflow run is continued, whatever its old driver's heartbeat says."""
    pinned = os.environ.get(RUN_NAME_ENV)
    if not pinned:
        return None
    run = _newest_run(client, config.tracking.experiment,
                      f"{_named(pinned)} and attributes.status != 'FINISHED'")
    return resume_point(client, run, config, [], take_over=True) if run else None


def resume_command(run_id: str, uri: str) -> str:
    """The command that continues the run (naming its store unless it is the default)."""
    default = tracking.resolve_tracking_uri(TrackingConfig())
    return f"orchestrator launch --resume {run_id}" + (
        "" if uri == default else f" tracking.uri={uri}")


def prepare_resume(wanted: str, path: str | None, overrides: list[str]) -> ResumePoint:
    """`launch --resume WANTED [CONFIG] [key=value ...]`: the run, checked before anything
    starts. The tracking store and experiment come from the config given (or the
    defaults); without a CONFIG the run's own stored config is the base of the overrides."""
    given = load_config(path, overrides)
    uri = tracking.resolve_tracking_uri(given.tracking)
    tracking.check_reachable(uri)
    if uri.startswith("sqlite:///") and not Path(uri[len("sqlite:///"):]).is_file():
        raise OrchestratorError(f"--resume {wanted}: no MLflow store at {uri}; give "
                                "tracking.uri=... where the run was logged")
    client = MlflowClient(uri)
    run = find_run(client, given.tracking.experiment, wanted)
    return resume_point(client, run, resolve_paths(given) if path else None, overrides)


def resume_point(client: MlflowClient, run: Run, given: ExperimentConfig | None,
                 overrides: list[str], take_over: bool = False) -> ResumePoint:
    """Check the run may be continued and build its config: the run's stored config with
    `overrides`, or the `given` config, which may differ from it only in CHANGEABLE keys.
    `take_over`: the run is ours whatever its heartbeat says (a retried RayJob's)."""
    run_id = run.info.run_id
    if TRIAL_TAG in run.data.tags:
        raise OrchestratorError(f"--resume: run {run_id} is a sweep trial; continue its sweep "
                                "with `orchestrator sweep --resume SWEEP_DIR`")
    if run.info.status == "RUNNING" and not take_over and not is_stale(run):
        raise OrchestratorError(
            f"--resume: run {run_id} is still running (driver "
            f"{run.data.tags.get(DRIVER_TAG, 'not recorded')}, "
            f"seen {int(time.time() - _heartbeat(run))} s ago); stop that driver first"
        )
    try:
        stored = ExperimentConfig.model_validate(_stored_config(client, run_id))
    except ValidationError as exc:
        raise OrchestratorError(f"--resume: run {run_id}'s {STORED_CONFIG_FILE} no longer "
                                f"validates: {describe_validation_error(exc, ExperimentConfig)}"
                                ) from None
    config = given if given is not None else with_overrides(stored, overrides)
    refuse_changes(stored, config, run_id)
    epochs = len(client.get_metric_history(run_id, TASK_METRICS[config.task].monitor))
    if run.info.status == "FINISHED" and config.train.max_epochs <= epochs:
        raise OrchestratorError(
            f"--resume: run {run_id} FINISHED all {epochs} epochs; give "
            f"train.max_epochs=N (N > {epochs}) to train it further"
        )
    return ResumePoint(run_id, run.info.run_name, config)


def reopen(client: MlflowClient, point: ResumePoint) -> None:
    """The run is RUNNING again, and counts this resume."""
    resumes = int(client.get_run(point.run_id).data.tags.get(RESUMES_TAG, "0")) + 1
    client.set_tag(point.run_id, RESUMES_TAG, str(resumes))
    client.update_run(point.run_id, status=RunStatus.to_string(RunStatus.RUNNING))


def refuse_changes(stored: ExperimentConfig, config: ExperimentConfig, run_id: str) -> None:
    """A resumed run trains the same experiment: any other change is refused by name."""
    before, after = flatten(stored), flatten(config)
    changed = [key for key in after if before.get(key) != after[key]
               and not key.startswith(CHANGEABLE) and key not in CHANGEABLE]
    if changed:
        listed = ", ".join(f"{key} ({before.get(key)!r} -> {after[key]!r})" for key in changed)
        valid = ", ".join(key + "*" if key.endswith(".") else key for key in CHANGEABLE)
        raise OrchestratorError(
            f"--resume: run {run_id} was trained with other values of {listed}; a resumed run "
            f"may change only {valid} (start a new run for the rest)"
        )


def is_stale(run: Run) -> bool:
    """A RUNNING run whose driver has stopped: its process is gone from this machine, or
    it has missed three heartbeats. Runs without a driver tag are not launches'."""
    owner = run.data.tags.get(DRIVER_TAG)
    if run.info.status != "RUNNING" or not owner:
        return False
    host, _, pid = owner.rpartition(":")
    if host == socket.gethostname() and pid.isdigit() and not _alive(int(pid)):
        return True
    return time.time() - _heartbeat(run) > STALE_AFTER_S


def mark_stale_runs(client: MlflowClient, experiment: str) -> list[str]:
    """End the experiment's stale RUNNING launches as KILLED, each with a tag saying how
    to resume it; returns their ids."""
    found = client.get_experiment_by_name(experiment)
    if found is None:
        return []
    running = client.search_runs([found.experiment_id], "attributes.status = 'RUNNING'")
    stale = [run for run in running if is_stale(run)]
    for run in stale:
        client.set_tag(run.info.run_id, STALE_TAG, f"driver {run.data.tags[DRIVER_TAG]} "
                       f"stopped; continue with: "
                       f"{resume_command(run.info.run_id, client.tracking_uri)}")
        client.set_terminated(run.info.run_id, RunStatus.to_string(RunStatus.KILLED))
    return [run.info.run_id for run in stale]


class DriverHeartbeat:
    """Marks the run as owned by this process while the `with` block runs: the driver tag
    once, the heartbeat tag every HEARTBEAT_S seconds (one small write each)."""

    def __init__(self, client: MlflowClient, run_id: str):
        self.client = client
        self.run_id = run_id
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name="heartbeat", daemon=True)

    def __enter__(self) -> DriverHeartbeat:
        self.client.set_tag(self.run_id, DRIVER_TAG, f"{socket.gethostname()}:{os.getpid()}")
        self.client.set_tag(self.run_id, HEARTBEAT_TAG, str(int(time.time())))
        self._thread.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self._stop.set()
        self._thread.join(timeout=10)  # a beat stuck in a tracking outage is left behind

    def _beat(self) -> None:
        while not self._stop.wait(HEARTBEAT_S):
            try:
                self.client.set_tag(self.run_id, HEARTBEAT_TAG, str(int(time.time())))
            except Exception:  # noqa: BLE001 - a tracking outage must not stop training
                continue


def _named(name: str) -> str:
    return f"attributes.run_name = '{name.replace(chr(39), '')}'"


def _newest_run(client: MlflowClient, experiment: str, where: str) -> Run | None:
    """The experiment's most recently started run that matches `where`, if any."""
    found = client.get_experiment_by_name(experiment)
    if found is None:
        return None
    runs = client.search_runs([found.experiment_id], where,
                              order_by=["attributes.start_time DESC"], max_results=1)
    return runs[0] if runs else None


def _stored_config(client: MlflowClient, run_id: str) -> dict[str, Any]:
    try:
        text = client.download_artifacts(run_id, STORED_CONFIG_FILE)
        with open(text) as stored:
            return yaml.safe_load(stored)
    except (MlflowException, OSError) as exc:
        raise OrchestratorError(f"--resume: run {run_id} has no readable {STORED_CONFIG_FILE} "
                                f"artifact ({exc}); it was not started by `launch`") from None


def _heartbeat(run: Run) -> float:
    try:
        return float(run.data.tags.get(HEARTBEAT_TAG, run.info.start_time / 1000))
    except ValueError:
        return 0.0


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


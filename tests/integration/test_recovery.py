"""A killed training worker: Ray Train restarts the group, which resumes from the last
checkpoint (not from scratch), and the MLflow run still ends FINISHED."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

from mlflow.tracking import MlflowClient
from ray.util.state import list_actors

from orchestrator.config import ExperimentConfig
from orchestrator.launch import launch
from orchestrator.run_files import RUN_NAME_ENV
from tests.small_runs import small_config

EPOCHS, STEPS = 4, 40


def wait_for(predicate, timeout_s: float = 180.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not met in time")
        time.sleep(0.2)


def registered_checkpoints(runs: Path, name: str = "recovers") -> int:
    """Checkpoints Ray Train has registered for the run `name` (a folder appears before
    its registration)."""
    for snapshot in runs.glob(f"{name}-*/checkpoint_manager_snapshot.json"):
        try:
            return len(json.loads(snapshot.read_text())["checkpoint_results"])
        except (ValueError, KeyError):  # being written
            return 0
    return 0


def launch_in_thread(config: ExperimentConfig) -> tuple[threading.Thread, dict[str, Any]]:
    """`launch(config)` running in a started thread; its outcome dict gets the "result"
    or the "error" (reported by the test's assertions) once the thread ends."""
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["result"] = launch(config)
        except Exception as exc:  # noqa: BLE001 - reported by the caller's assertion
            outcome["error"] = exc

    thread = threading.Thread(target=run)
    thread.start()
    return thread, outcome


def test_killed_worker_resumes_from_last_checkpoint(local_ray, markov_dataset, tmp_path):
    config = small_config(
        markov_dataset, tmp_path, "ray.max_failures=1", f"train.max_epochs={EPOCHS}",
        f"train.batches_per_epoch={STEPS}", "name=recovers",
    )
    thread, outcome = launch_in_thread(config)
    # Kill once the first epoch's checkpoint is registered: 3 epochs are left to resume.
    wait_for(lambda: registered_checkpoints(tmp_path / "runs") >= 1)
    address = local_ray.get_runtime_context().gcs_address  # this test's Ray, not another
    alive = [("class_name", "=", "RayTrainWorker"), ("state", "=", "ALIVE")]
    workers = list_actors(address=address, filters=alive)
    os.kill(workers[0].pid, signal.SIGKILL)
    thread.join(timeout=300)

    assert "error" not in outcome, outcome.get("error")
    every_worker = list_actors(address=address, filters=[("class_name", "=", "RayTrainWorker")])
    assert len(every_worker) == 4  # the first group of 2, then the restarted group
    result = outcome["result"]
    client = MlflowClient(result.tracking_uri)
    assert client.get_run(result.run_id).info.status == "FINISHED"
    steps = [m.step for m in client.get_metric_history(result.run_id, "train_loss")]
    assert max(steps) == EPOCHS * STEPS - 1  # every epoch was trained
    # the restarted group resumed; starting over would log step 0 again (metrics still in
    # the killed worker's 2 s MLflow buffer may be lost, so absence is allowed)
    assert steps.count(0) <= 1


def test_a_relaunch_under_the_same_run_name_resumes_from_its_checkpoint(
    local_ray, markov_dataset, tmp_path, monkeypatch
):
    """What a retried Kubernetes RayJob does: the same run name and storage path."""
    monkeypatch.setenv(RUN_NAME_ENV, "pinned-run")
    first = launch(small_config(markov_dataset, tmp_path, "train.max_epochs=1",
                                f"train.batches_per_epoch={STEPS}"))
    second = launch(small_config(markov_dataset, tmp_path, "train.max_epochs=2",
                                 f"train.batches_per_epoch={STEPS}"))
    client = MlflowClient(second.tracking_uri)
    steps = [m.step for m in client.get_metric_history(second.run_id, "train_loss")]
    assert steps == list(range(STEPS, 2 * STEPS))  # only the second epoch was trained
    assert first.run_id != second.run_id

"""Which run `launch --resume` continues and what it may change, on a real sqlite MLflow
store; stale runs (their driver gone) are ended KILLED. Training itself is resumed in
tests/integration/test_interrupted_launch.py."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from mlflow.tracking import MlflowClient

from orchestrator.config import load_config
from orchestrator.errors import OrchestratorError
from orchestrator.inputs import check_writable, resolve_paths
from orchestrator.resume import (
    DRIVER_TAG,
    HEARTBEAT_TAG,
    STALE_AFTER_S,
    STALE_TAG,
    mark_stale_runs,
    prepare_resume,
)
from orchestrator.run_files import STORED_CONFIG_FILE
from orchestrator.tracking import start_run
from orchestrator.tuning.mlflow_runs import TRIAL_TAG

EXPERIMENT = "resume"


@pytest.fixture
def store(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path}/mlflow.db"


def logged_run(uri: str, name: str = "lm-1", status: str = "KILLED", epochs: int = 2,
               tags: dict[str, str] | None = None) -> str:
    """A launch's run as the driver leaves it: its config artifact, `epochs` validations."""
    run_id = start_run(uri, EXPERIMENT, name, tags=tags or {})
    client = MlflowClient(uri)
    config = resolve_paths(load_config(None, [f"tracking.experiment={EXPERIMENT}",
                                              "train.max_epochs=4"]))
    client.log_text(run_id, yaml.safe_dump(config.model_dump()), STORED_CONFIG_FILE)
    for epoch in range(epochs):
        client.log_metric(run_id, "val_perplexity", 2.0 - epoch / 10, step=10 * epoch)
    if status != "RUNNING":
        client.set_terminated(run_id, status)
    return run_id


def resume(uri: str, wanted: str, *overrides: str):
    return prepare_resume(wanted, None, [f"tracking.uri={uri}",
                                         f"tracking.experiment={EXPERIMENT}", *overrides])


def test_a_run_is_found_by_id_name_or_last(store):
    first = logged_run(store, "first")
    time.sleep(0.01)
    second = logged_run(store, "second", tags={DRIVER_TAG: "elsewhere:1"})
    assert resume(store, first).run_id == first
    assert resume(store, "second").run_id == second
    assert resume(store, "last").run_id == second  # the newest launch
    point = resume(store, first)
    assert point.run_name == "first" and point.config.train.max_epochs == 4


def test_more_epochs_may_change_the_model_may_not(store):
    run_id = logged_run(store)
    assert resume(store, run_id, "train.max_epochs=8", "ray.num_workers=1").config \
        .train.max_epochs == 8
    with pytest.raises(OrchestratorError) as refused:
        resume(store, run_id, "model.hidden_size=64", "optim.lr=0.1")
    message = str(refused.value)
    assert "model.hidden_size (128 -> 64)" in message and "optim.lr" in message
    assert "train.max_epochs" in message  # says what may change


def test_a_finished_run_resumes_only_to_train_more(store):
    run_id = logged_run(store, status="FINISHED", epochs=4)
    with pytest.raises(OrchestratorError, match="FINISHED all 4 epochs"):
        resume(store, run_id)
    assert resume(store, run_id, "train.max_epochs=6").config.train.max_epochs == 6


def test_a_sweep_trial_is_resumed_by_its_sweep(store):
    run_id = logged_run(store, tags={TRIAL_TAG: "abc_00001"})
    with pytest.raises(OrchestratorError, match="sweep --resume"):
        resume(store, run_id)


def dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_a_running_run_is_refused_while_its_driver_lives_and_taken_over_after(store):
    here = socket.gethostname()
    alive = logged_run(store, "alive", status="RUNNING", tags={
        DRIVER_TAG: f"{here}:{os.getpid()}", HEARTBEAT_TAG: str(int(time.time()))})
    with pytest.raises(OrchestratorError, match="still running"):
        resume(store, alive)
    killed = logged_run(store, "killed", status="RUNNING", tags={
        DRIVER_TAG: f"{here}:{dead_pid()}", HEARTBEAT_TAG: str(int(time.time()))})
    assert resume(store, killed).run_id == killed  # its process is gone: stale at once
    silent = logged_run(store, "silent", status="RUNNING", tags={  # another machine's
        DRIVER_TAG: "node-7:42", HEARTBEAT_TAG: str(int(time.time() - STALE_AFTER_S - 5))})
    assert resume(store, silent).run_id == silent


def test_stale_runs_are_marked_killed_live_and_foreign_runs_are_left(store):
    here = socket.gethostname()
    live = logged_run(store, "live", status="RUNNING", tags={
        DRIVER_TAG: f"{here}:{os.getpid()}", HEARTBEAT_TAG: str(int(time.time()))})
    stale = logged_run(store, "stale", status="RUNNING", tags={
        DRIVER_TAG: f"{here}:{dead_pid()}", HEARTBEAT_TAG: str(int(time.time()))})
    untagged = logged_run(store, "a-sweep-child", status="RUNNING")
    with pytest.raises(OrchestratorError, match="driver not recorded"):  # can't tell: refused
        resume(store, untagged)
    client = MlflowClient(store)
    assert mark_stale_runs(client, EXPERIMENT) == [stale]
    marked = client.get_run(stale)
    assert marked.info.status == "KILLED"
    assert f"orchestrator launch --resume {stale}" in marked.data.tags[STALE_TAG]
    assert client.get_run(live).info.status == client.get_run(untagged).info.status == "RUNNING"


def test_storage_must_be_a_writable_folder_with_room(tmp_path):
    afile = tmp_path / "a-file"
    afile.write_text("x")
    with pytest.raises(OrchestratorError, match="is a file, not a folder"):
        check_writable(afile / "runs", "ray.storage_path")
    with pytest.raises(OrchestratorError, match="MiB free, less than"):
        check_writable(tmp_path / "runs", "ray.storage_path", need_bytes=2**62)
    check_writable(tmp_path / "new" / "runs", "ray.storage_path")
    assert not (tmp_path / "new").exists()  # checking creates nothing


def test_a_retried_rayjob_continues_its_unfinished_run_even_with_a_fresh_heartbeat(
    store, monkeypatch
):
    from orchestrator.resume import unfinished_pinned_run
    from orchestrator.run_files import RUN_NAME_ENV

    client = MlflowClient(store)
    config = resolve_paths(load_config(None, [f"tracking.experiment={EXPERIMENT}",
                                              "train.max_epochs=4"]))
    done = logged_run(store, "job-7", status="FINISHED", epochs=4)
    assert done  # a finished run of that name is not continued: a resubmitted job starts anew
    monkeypatch.setenv(RUN_NAME_ENV, "job-7")
    assert unfinished_pinned_run(client, config) is None
    time.sleep(0.01)
    running = logged_run(store, "job-7", status="RUNNING", tags={  # the old pod's driver
        DRIVER_TAG: "pod-a:1", HEARTBEAT_TAG: str(int(time.time()))})
    assert unfinished_pinned_run(client, config).run_id == running
    monkeypatch.setenv(RUN_NAME_ENV, "job-8")
    assert unfinished_pinned_run(client, config) is None

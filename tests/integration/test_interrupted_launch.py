"""A launch driver stopped by real signals (Ctrl-C, then SIGKILL), each time continued with
`launch --resume`: the same MLflow run trains only the missing epochs, its metric histories
hold every step once, and it ends where an uninterrupted run with the same seed ends."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from orchestrator.launch import launch
from tests.small_runs import small_config, small_overrides

# 8 epochs: a SIGKILLed driver's workers train on for seconds (a CI run saw them finish
# epochs 5 and 6 of 6), and the last resume must still have epochs to train
EPOCHS, STEPS = 8, 120
# a model big enough that an epoch outlasts the test's poll, so the signal lands in epoch 3
SIZE = ("model.hidden_size=128", "model.embedding_dim=32", f"train.max_epochs={EPOCHS}",
        f"train.batches_per_epoch={STEPS}", "ray.num_workers=2")


@pytest.fixture(scope="module")
def uninterrupted(local_ray, markov_dataset, tmp_path_factory) -> float:
    """The test perplexity of the same run trained in one go."""
    folder = tmp_path_factory.mktemp("uninterrupted")
    return launch(small_config(markov_dataset, folder, *SIZE)).metrics["test_perplexity"]


def descendants(pid: int) -> set[int]:
    """Every process below `pid` now (Ray's GCS, raylet, workers), from /proc."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = set(), [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.add(child)
            todo.append(child)
    return found


def train_workers(pids: set[int]) -> set[int]:
    """The Ray Train workers among `pids` (Ray sets their command line to its actor name)."""
    workers = set()
    for pid in pids:
        try:
            if Path(f"/proc/{pid}/cmdline").read_bytes().startswith(b"ray::RayTrainWorker"):
                workers.add(pid)
        except OSError:
            continue
    return workers


def alive(pids: set[int]) -> set[int]:
    return {pid for pid in pids if Path(f"/proc/{pid}").exists()
            and Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"}


def orchestrator(*args: str, cwd: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "orchestrator.cli", *args], cwd=cwd,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_a_launch_interrupted_twice_finishes_in_its_one_run(uninterrupted, markov_dataset,
                                                             tmp_path):
    """Ctrl-C after epoch 2, `--resume RUN_ID`; SIGKILL after epoch 4, `--resume last`."""
    client = MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")
    driver = orchestrator("launch", *small_overrides(markov_dataset, tmp_path, *SIZE),
                          cwd=tmp_path)
    run_id = wait_for_epochs(client, driver, 2)
    ray_processes = descendants(driver.pid)
    driver.send_signal(signal.SIGINT)
    _, err = driver.communicate(timeout=120)
    assert driver.returncode == 130, err  # Ctrl-C: the run ends KILLED, says how to go on
    assert f"continue the run with: orchestrator launch --resume {run_id}" in err
    assert client.get_run(run_id).info.status == "KILLED"
    wait_until_gone(ray_processes, timeout_s=30)
    epochs_done = len(client.get_metric_history(run_id, "val_perplexity"))
    assert 2 <= epochs_done < 4

    store = f"tracking.uri=sqlite:///{tmp_path}/mlflow.db"
    resumed = orchestrator("launch", "--resume", run_id, store, cwd=tmp_path)
    assert wait_for_epochs(client, resumed, 4) == run_id
    assert client.get_run(run_id).data.tags["orchestrator.resumes"] == "1"
    killed_processes = descendants(resumed.pid)
    killed_workers = train_workers(killed_processes)
    assert killed_workers  # the training workers, below the driver's local Ray
    resumed.send_signal(signal.SIGKILL)
    resumed.communicate(timeout=120)
    # the workers outlive their driver a moment and may finish an epoch or two: count after them
    wait_until_gone(killed_workers, timeout_s=60)
    assert client.get_run(run_id).info.status == "RUNNING"  # until a resume finds it stale
    epochs_done = len(client.get_metric_history(run_id, "val_perplexity"))
    assert 4 <= epochs_done < EPOCHS

    last = orchestrator("launch", "--resume", "last", store, cwd=tmp_path)
    out, err = last.communicate(timeout=300)
    assert last.returncode == 0, err
    assert f"MLflow run: {run_id}" in out
    assert f"epoch {epochs_done + 1}/{EPOCHS}" in out and "epoch 1/" not in out
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED" and run.data.tags["orchestrator.resumes"] == "2"
    val_steps = [m.step for m in client.get_metric_history(run_id, "val_perplexity")]
    assert len(val_steps) == EPOCHS and val_steps == sorted(set(val_steps))
    train_steps = [m.step for m in client.get_metric_history(run_id, "train_loss")]
    assert sorted(train_steps) == list(range(EPOCHS * STEPS))  # every step once
    assert run.data.metrics["test_perplexity"] == pytest.approx(uninterrupted, rel=0.05)
    # Ray's node agents outlive a killed driver until they notice their raylet is gone
    wait_until_gone(killed_processes, timeout_s=120)


def wait_until_gone(pids: set[int], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while alive(pids) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not alive(pids), "Ray processes outlived their driver"


def wait_for_epochs(client: MlflowClient, driver: subprocess.Popen, epochs: int) -> str:
    """The launch's run id, once the driver has printed its line for epoch `epochs`."""
    for line in driver.stdout:
        if line.startswith(f"epoch {epochs}/"):
            experiment = client.get_experiment_by_name("rnn-orchestrator")
            return client.search_runs([experiment.experiment_id])[0].info.run_id
    raise AssertionError(f"the launch ended before epoch {epochs}: {driver.communicate()[1]}")

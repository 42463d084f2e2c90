"""`launch --address http://...`: a run submitted through the Ray Jobs API of a real head;
`launch --address ray://...`: the same run driven from here through Ray Client.

The test starts its own head on loopback (`ray start --head --block` with its own temp dir
and token) and ends exactly the processes that head started, found by that temp dir; it
never runs `ray stop`, which would end every Ray process on the machine.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from tests.servers import free_port, wait_for_http
from tests.small_runs import small_overrides

RAY = Path(sys.executable).with_name("ray")




def pids_using(folder: str) -> list[int]:
    """Processes whose command line names the folder (Linux /proc): the head's own."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            try:
                if folder.encode() in (entry / "cmdline").read_bytes():
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


@pytest.fixture(scope="module")
def ray_head():
    """A token-authenticated head on 127.0.0.1, as a user would set one up."""
    token = secrets.token_hex(32)
    temp_dir = tempfile.mkdtemp(prefix="rt", dir="/tmp")  # short: unix socket paths
    env = {**os.environ, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": token,
           "PATH": f"{RAY.parent}{os.pathsep}{os.environ['PATH']}"}
    port, client_port = free_port(), free_port()
    head = subprocess.Popen(
        [str(RAY), "start", "--head", "--block", "--node-ip-address=127.0.0.1",
         f"--port={free_port()}", "--dashboard-host=127.0.0.1", f"--dashboard-port={port}",
         f"--temp-dir={temp_dir}", "--num-cpus=2", "--disable-usage-stats",
         f"--ray-client-server-port={client_port}",
         # its own agent ports: another Ray on the machine holds the defaults (52365, ...)
         f"--dashboard-agent-listen-port={free_port()}",
         f"--dashboard-agent-grpc-port={free_port()}",
         f"--runtime-env-agent-port={free_port()}", f"--metrics-export-port={free_port()}"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )
    try:
        wait_for_http(f"http://127.0.0.1:{port}/api/version", head)
        auth = {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": token}
        yield f"http://127.0.0.1:{port}", auth, f"ray://127.0.0.1:{client_port}"
    finally:
        head.send_signal(signal.SIGTERM)
        try:
            head.wait(timeout=30)
        except subprocess.TimeoutExpired:
            head.kill()
        for pid in pids_using(temp_dir):  # anything of ours still running
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        shutil.rmtree(temp_dir, ignore_errors=True)


def launch_cli(address: str, auth: dict[str, str], overrides: list[str]):
    """`orchestrator launch --address http://...` as a user runs it, with the head's token
    in the environment (Ray reads its auth settings once per process)."""
    return subprocess.run(
        [sys.executable, "-m", "orchestrator.cli", "launch", *overrides, "--address", address],
        env={**os.environ, **auth}, capture_output=True, text=True, timeout=400,
    )


def assert_one_finished_run(tmp_path: Path, name: str) -> None:
    """The store in tmp_path holds one run, named `name`, FINISHED with test metrics."""
    client = MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")
    experiment = client.get_experiment_by_name("rnn-orchestrator")
    [run] = client.search_runs([experiment.experiment_id])
    assert run.info.status == "FINISHED" and run.info.run_name.startswith(name)
    assert "test_perplexity" in run.data.metrics


def test_job_runs_to_completion_and_logs_its_mlflow_run(ray_head, markov_dataset, tmp_path):
    address, auth, _ = ray_head
    overrides = small_overrides(markov_dataset, tmp_path, "train.max_epochs=1",
                                "name=remote-ok", "train.batches_per_epoch=4")
    out = launch_cli(address, auth, overrides)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "submitted job" in out.stdout and "MLflow run:" in out.stdout  # driver, streamed
    assert_one_finished_run(tmp_path, "remote-ok")


def test_failing_job_returns_non_zero_with_its_error(ray_head, tmp_path):
    address, auth, _ = ray_head
    out = launch_cli(address, auth, small_overrides(tmp_path / "no-such-dataset", tmp_path,
                                                    "name=remote-fails"))
    assert out.returncode == 1
    assert "FAILED" in out.stderr and "no-such-dataset has no dataset.json" in out.stderr


def test_ray_client_drives_the_run_from_here(ray_head, markov_dataset, tmp_path):
    _, auth, client_address = ray_head
    overrides = small_overrides(markov_dataset, tmp_path, "train.max_epochs=1",
                                "name=client-ok", "train.batches_per_epoch=4")
    out = launch_cli(client_address, auth, overrides)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "MLflow run:" in out.stdout and "submitted job" not in out.stdout
    assert_one_finished_run(tmp_path, "client-ok")

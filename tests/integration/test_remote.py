"""`launch --address http://...`: a run submitted through the Ray Jobs API of a real head;
`launch --address ray://...`: the same run driven from here through Ray Client.

The test starts its own head on loopback (`ray start --head --block` with its own temp dir
and token) and ends exactly the processes that head started, found by that temp dir; it
never runs `ray stop`, which would end every Ray process on the machine.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from tests.servers import ADMIN_PASSWORD, auth_mlflow_server, free_port, wait_for_http
from tests.small_runs import small_overrides

RAY = Path(sys.executable).with_name("ray")
MLFLOW_LOGIN = {"MLFLOW_TRACKING_USERNAME": "admin", "MLFLOW_TRACKING_PASSWORD": ADMIN_PASSWORD}




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
def auth_server(tmp_path_factory) -> Iterator[str]:
    with auth_mlflow_server(tmp_path_factory.mktemp("mlflow-server")) as url:
        yield url


@pytest.fixture(scope="module")
def ray_head(auth_server):
    """A token-authenticated head on 127.0.0.1, as a user would set one up: started in an
    environment that holds the MLflow server's credentials, as the cluster's own."""
    token = secrets.token_hex(32)
    temp_dir = tempfile.mkdtemp(prefix="rt", dir="/tmp")  # short: unix socket paths
    env = {**os.environ, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": token,
           "PATH": f"{RAY.parent}{os.pathsep}{os.environ['PATH']}", **MLFLOW_LOGIN}
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
        try:  # `ray start --block` can take a minute to stop its children: they are killed
            head.wait(timeout=5)
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


def test_a_job_carries_no_credential_and_logs_with_the_clusters(
    ray_head, auth_server, markov_dataset, tmp_path, monkeypatch
):
    address, auth, _ = ray_head
    overrides = small_overrides(markov_dataset, tmp_path, "train.max_epochs=1",
                                "name=remote-auth", "train.batches_per_epoch=4",
                                f"tracking.uri={auth_server}")
    # This machine needs the login too: the server is checked before anything is submitted.
    out = launch_cli(address, {**auth, **MLFLOW_LOGIN}, overrides)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "submitted job" in out.stdout and "MLflow run:" in out.stdout  # driver, streamed
    assert "MLflow credentials are not sent with the job" in out.stdout
    job = submitted_job(address, auth, "remote-auth")
    assert job["runtime_env"] and ADMIN_PASSWORD not in json.dumps(job)
    # the package travels as a folder: Ray would pip-install a wheel with all its dependencies
    assert not any(module.endswith(".whl") for module in job["runtime_env"]["py_modules"])
    assert "MLFLOW_TRACKING" not in json.dumps(job)
    for name, value in MLFLOW_LOGIN.items():  # this test reads the run with the login
        monkeypatch.setenv(name, value)
    client = MlflowClient(auth_server)
    [run] = client.search_runs([client.get_experiment_by_name("rnn-orchestrator").experiment_id],
                               "attributes.run_name LIKE 'remote-auth%'")
    assert run.info.status == "FINISHED" and "test_perplexity" in run.data.metrics


def submitted_job(address: str, auth: dict[str, str], experiment: str) -> dict:
    """What the Jobs API tells anyone with access about the job: its entrypoint, runtime_env
    and metadata (read in a process with the head's token; Ray reads it once per process)."""
    script = (
        "import json, sys; from ray.job_submission import JobSubmissionClient\n"
        f"jobs = JobSubmissionClient({address!r}).list_jobs()\n"
        f"[job] = [j for j in jobs if (j.metadata or {{}}).get('experiment') == {experiment!r}]\n"
        "print(json.dumps({'entrypoint': job.entrypoint, 'runtime_env': job.runtime_env,"
        " 'metadata': job.metadata}))\n"
    )
    out = subprocess.run([sys.executable, "-c", script], env={**os.environ, **auth},
                         capture_output=True, text=True, timeout=120, check=True)
    return json.loads(out.stdout.splitlines()[-1])


def assert_one_finished_run(tmp_path: Path, name: str) -> None:
    """The store in tmp_path holds one run, named `name`, FINISHED with test metrics."""
    client = MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")
    experiment = client.get_experiment_by_name("rnn-orchestrator")
    [run] = client.search_runs([experiment.experiment_id])
    assert run.info.status == "FINISHED" and run.info.run_name.startswith(name)
    assert "test_perplexity" in run.data.metrics


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

"""`orchestrator launch --address http://HOST:8265 | ray://HOST:10001`: a run on a remote cluster.

http(s): the run is submitted through the Ray Jobs API as `orchestrator launch` on the
cluster, with this project's package shipped in the runtime_env (`py_modules`) and the
config as the job's working_dir; its logs stream here and its status is the exit code.
ray://: this process drives the run through Ray Client, with the same package.

What is shipped is the `orchestrator` package unpacked from a wheel built from the checkout:
pyproject mounts the sibling folders datasets/, lightning_modules/ and tuning/ under
`orchestrator.`, and the wheel holds exactly that package, as pip installs it, and none of
the checkout's data, runs or links. It travels as a folder, not as the wheel: Ray installs a
wheel with pip, dependencies and all, so every job would download and install torch, Ray and
MLflow (gigabytes, minutes) beside the cluster's own. The dependencies are the cluster's
(the k8s image installs them).
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path
from typing import Any

import yaml

from orchestrator import tracking
from orchestrator.config import ExperimentConfig
from orchestrator.errors import OrchestratorError, hide_passwords

CONFIG_FILE = "experiment.yaml"
# Credentials never travel with a job (its runtime_env is readable through the Jobs API and
# the dashboard): the cluster's nodes hold them, in the environment `ray start` ran in.
CLUSTER_CREDENTIALS_HINT = (
    "MLflow credentials are not sent with the job: the cluster's nodes need "
    "MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD (or MLFLOW_TRACKING_TOKEN) in the "
    "environment `ray start` runs in (on Kubernetes, the rnn-orchestrator-mlflow Secret)"
)


def launch_remote(config: ExperimentConfig, address: str) -> int:
    """Run one launch on the cluster at `address`; 0 when the run succeeded."""
    if address.startswith(("http://", "https://")):
        return submit_job(config, address)
    if address.startswith("ray://"):
        return launch_with_client(config, address)
    raise OrchestratorError(
        f"address {address!r} is neither http://HOST:8265 (Ray Jobs API) nor "
        "ray://HOST:10001 (Ray Client)"
    )


def submit_job(config: ExperimentConfig, address: str) -> int:
    from ray.job_submission import JobStatus, JobSubmissionClient

    config = _config_for_job(config)
    with tempfile.TemporaryDirectory(prefix="orchestrator-job-") as folder:
        workdir = Path(folder) / "job"
        workdir.mkdir()
        (workdir / CONFIG_FILE).write_text(yaml.safe_dump(config.model_dump(), sort_keys=False))
        client = _connect(JobSubmissionClient, address)
        job_id = _submit_when_ready(
            client,
            entrypoint=f"python -m orchestrator.cli launch {CONFIG_FILE} --address auto",
            runtime_env=_runtime_env(workdir, Path(folder)),
            metadata={"experiment": config.name},
        )
    print(f"submitted job {job_id} to {hide_passwords(address)}", flush=True)
    try:
        asyncio.run(_stream_logs(client, job_id))
    except KeyboardInterrupt:
        return _ask_to_stop(client, job_id)
    info = client.get_job_info(job_id)
    if info.status == JobStatus.SUCCEEDED:
        return 0
    print(f"error: job {job_id} {info.status.value}: {_error_text(client, job_id, info)}",
          file=sys.stderr)
    return 1


def _submit_when_ready(client: Any, wait_s: float = 120.0, **job: Any) -> str:
    """Submit, waiting while a just-started head has no job agent yet (HTTP 500 "No
    available agent"), as Ray's own CLI users do by hand."""
    deadline = time.monotonic() + wait_s
    while True:
        try:
            return client.submit_job(**job)
        except RuntimeError as exc:
            if "No available agent" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(2)


def launch_with_client(config: ExperimentConfig, address: str) -> int:
    """Ray Client: the driver runs here, tasks and actors on the cluster."""
    import ray

    from orchestrator.launch import launch, summary

    config = _config_for_job(config)
    with tempfile.TemporaryDirectory(prefix="orchestrator-package-") as folder:
        ray.init(address=address, runtime_env=_runtime_env(None, Path(folder)))
        try:
            print(summary(launch(config)))
        finally:
            ray.shutdown()
    return 0


def _config_for_job(config: ExperimentConfig) -> ExperimentConfig:
    """Check the tracking server from here, before anything is submitted, and make paths
    absolute (they must name storage the cluster sees)."""
    from orchestrator.inputs import resolve_paths

    config = resolve_paths(config)
    uri = tracking.resolve_tracking_uri(config.tracking)
    tracking.check_reachable(uri)
    if hide_passwords(uri) != uri:  # from $MLFLOW_TRACKING_URI: the cluster must set it too
        print("the tracking URI carries credentials and is not sent with the job: set "
              "MLFLOW_TRACKING_URI on the cluster's nodes", flush=True)
    else:
        config.tracking.uri = uri
    if tracking.credentials():
        print(CLUSTER_CREDENTIALS_HINT, flush=True)
    config.ray.address = "auto"  # inside the job: the cluster it runs on
    return config


def _connect(client_class: type, address: str):
    try:
        return client_class(address)
    except (ConnectionError, RuntimeError) as exc:
        raise OrchestratorError(
            f"cannot reach the Ray Jobs API at {address} ({' '.join(str(exc).split())}); "
            "is the head running (`ray start --head`), and is RAY_AUTH_TOKEN set for it?"
        ) from None


def _runtime_env(workdir: Path | None, scratch: Path) -> dict:
    env: dict = {"py_modules": [str(package_folder(scratch))]}
    if workdir is not None:
        env["working_dir"] = str(workdir)
    return env


def package_folder(out: Path) -> Path:
    """The `orchestrator` package as pip installs it, unpacked from this checkout's wheel
    (our own archive, just built) into `out`."""
    unpacked = out / "package"
    with zipfile.ZipFile(build_wheel(out)) as wheel:
        wheel.extractall(unpacked)
    return unpacked / "orchestrator"


def build_wheel(out: Path) -> Path:
    """This project as a wheel, built from the checkout it was installed from."""
    root = Path(__file__).resolve().parents[1]
    if not (root / "pyproject.toml").is_file():
        raise OrchestratorError(
            f"{root} is not a checkout of rnn-orchestrator (no pyproject.toml), so there is "
            "nothing to ship; run from a checkout, or use a cluster image with the project"
        )
    done = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
         "-w", str(out), str(root)],
        capture_output=True, text=True, check=False,
    )
    wheels = sorted(out.glob("rnn_orchestrator-*.whl"))
    if done.returncode != 0 or not wheels:
        raise OrchestratorError(f"building the project wheel failed: {done.stderr.strip()}")
    return wheels[-1]


async def _stream_logs(client, job_id: str) -> None:
    async for lines in client.tail_job_logs(job_id):
        print(lines, end="", flush=True)


def _ask_to_stop(client, job_id: str) -> int:
    try:
        answer = input(f"\nstop job {job_id}? [y/N] ")
    except EOFError:
        answer = ""
    if answer.strip().lower() in {"y", "yes"}:
        client.stop_job(job_id)
        print(f"asked the cluster to stop job {job_id}")
    else:
        print(f"job {job_id} keeps running; `ray job logs {job_id}` follows it")
    return 130


def _error_text(client, job_id: str, info) -> str:
    """The driver's own `error: ...` line when it printed one, else Ray's message."""
    logs = client.get_job_logs(job_id)
    errors = [line for line in logs.splitlines() if line.startswith("error: ")]
    if errors:
        return errors[-1][len("error: "):]
    lines = [line for line in logs.splitlines() if line.strip()]
    return info.message or (lines[-1] if lines else "no output")

"""Helpers for tests that start a real server on loopback (Ray head, MLflow)."""

from __future__ import annotations

import itertools
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["ADMIN_PASSWORD", "auth_mlflow_server", "free_port", "start_mlflow_server",
           "stop_process_group", "wait_for_http"]

ADMIN_PASSWORD = "a-long-admin-password-1"


# Ports tests hand to servers come from 20000-29999: above Ray's worker ports (10002-19999)
# and below the kernel's ephemeral range (32768-60999), from which the code under test
# takes its own (a local Ray's dashboard, port 0 binds). Each pytest-xdist process has its
# own thousand, so a port one process chose cannot be taken by another before it binds.
_XDIST_PROCESS = int(os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw"))
_FIRST_TEST_PORT = 20000 + 1000 * _XDIST_PROCESS
_next_candidate = itertools.cycle(range(_FIRST_TEST_PORT, _FIRST_TEST_PORT + 1000))


def free_port() -> int:
    """A loopback port free now, never one this process handed out in its last 999 calls
    (several may be asked for before any is bound) nor one another test process uses."""
    for port in itertools.islice(_next_candidate, 1000):
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port in {_FIRST_TEST_PORT}-{_FIRST_TEST_PORT + 999}")


@contextmanager
def auth_mlflow_server(folder: Path) -> Iterator[str]:
    """A password-protected `mlflow server` (the basic-auth app) on loopback; yields its URL.
    The account `admin` / ADMIN_PASSWORD may write; anonymous requests are refused."""
    (folder / "auth.ini").write_text(
        # MLflow's own credential cache: without it every request re-hashes the password
        # (tens of ms, by design), and a one-epoch run took 50 s
        "[mlflow]\ndefault_permission = READ\nauth_cache_ttl_seconds = 600\n"
        f"database_uri = sqlite:///{folder}/auth.db\nadmin_username = admin\n"
        "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
    )
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "server", "--app-name", "basic-auth",
         "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
         "--backend-store-uri", f"sqlite:///{folder}/mlflow.db",
         "--artifacts-destination", str(folder / "artifacts")],
        env={**os.environ, "MLFLOW_AUTH_CONFIG_PATH": str(folder / "auth.ini"),
             "MLFLOW_AUTH_ADMIN_PASSWORD": ADMIN_PASSWORD,
             "MLFLOW_FLASK_SERVER_SECRET_KEY": "test-only-csrf-key"},
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for_http(f"{url}/health", server)
        yield url
    finally:
        stop_process_group(server)


def start_mlflow_server(folder: Path, port: int) -> subprocess.Popen:
    """A plain `mlflow server` (no auth) on loopback `port`, its store a sqlite file in
    `folder`; returns once it answers. Called again with the same folder and port, it is
    the same server back after an outage."""
    server = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port),
         "--workers", "1", "--backend-store-uri", f"sqlite:///{folder}/mlflow.db",
         "--artifacts-destination", str(folder / "artifacts")],
        # no job runner (a dozen processes for GenAI jobs): tracking needs none of it
        env={**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"},
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )
    try:
        wait_for_http(f"http://127.0.0.1:{port}/health", server)
    except BaseException:
        stop_process_group(server)
        raise
    return server


def wait_for_http(
    url: str, process: subprocess.Popen | None = None, timeout_s: float = 300.0
) -> None:
    """Until `url` answers at all (an HTTP error is an answer: 401 without a token);
    fails early if the server `process` exits. The wait is long because starting is slow
    on a loaded machine: `orchestrator ui` answers in 16 s alone on 2 cores, and once took
    over 120 s while a second test process trained beside it."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except urllib.error.HTTPError:
            return
        except OSError:
            if process is not None and process.poll() is not None:
                message = f"the server for {url} exited with {process.returncode}"
                raise RuntimeError(message) from None
            time.sleep(0.5)
    raise TimeoutError(f"{url} did not answer in {timeout_s} s")


def stop_process_group(process: subprocess.Popen) -> None:
    """Stop a server started with start_new_session=True and every process it spawned
    (mlflow's uvicorn and job-runner children outlive their parent otherwise)."""
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        return
    try:  # children that ignored SIGTERM
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass

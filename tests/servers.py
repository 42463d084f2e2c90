"""Helpers for tests that start a real server on loopback (Ray head, MLflow)."""

from __future__ import annotations

import os
import signal
import subprocess
import time
import urllib.error
import urllib.request

from orchestrator.inputs import free_port

__all__ = ["free_port", "stop_process_group", "wait_for_http"]


def wait_for_http(
    url: str, process: subprocess.Popen | None = None, timeout_s: float = 120.0
) -> None:
    """Until `url` answers at all (an HTTP error is an answer: 401 without a token);
    fails early if the server `process` exits."""
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

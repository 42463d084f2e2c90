"""Driving `kubectl` against the current kube context: apply, follow, status, logs.

Whatever the user's kubectl can reach, we can; its own error message becomes ours.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from typing import Any

from orchestrator.errors import OrchestratorError

# RayJob .status.jobStatus values after which nothing changes.
FINISHED = {"SUCCEEDED", "FAILED", "STOPPED"}
POLL_S = 5.0


def follow(job: str, namespace: str | None) -> int:
    """Wait for the job to end, printing each status change; 0 only if it succeeded."""
    last = None
    while True:
        status = job_status(job, namespace)
        current = (status.get("jobDeploymentStatus"), status.get("jobStatus"))
        if current != last:
            print(f"{job}: deployment {current[0] or '-'}, job {current[1] or '-'}", flush=True)
            last = current
        if current[1] in FINISHED or current[0] in {"Complete", "Failed"}:
            if status.get("message"):
                print(status["message"])
            return 0 if current[1] == "SUCCEEDED" else 1
        time.sleep(POLL_S)


def job_status(job: str, namespace: str | None) -> dict[str, Any]:
    out = kubectl(["get", "rayjob", job, "-o", "json"], namespace)
    return json.loads(out).get("status", {})


def kubectl(arguments: list[str], namespace: str | None, stdin: str | None = None) -> str:
    """Run kubectl; its own error message becomes the user's error message."""
    if shutil.which("kubectl") is None:
        raise OrchestratorError(
            "kubectl is not on PATH; install it (https://kubernetes.io/docs/tasks/tools/) "
            "and point it at your cluster, or use `orchestrator k8s render`"
        )
    command = ["kubectl", *namespace_arguments(namespace), *arguments]
    done = subprocess.run(command, input=stdin, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        reason = " ".join(done.stderr.split()) or f"exit status {done.returncode}"
        raise OrchestratorError(f"`kubectl {' '.join(arguments)}` failed: {reason}")
    return done.stdout


def namespace_arguments(namespace: str | None) -> list[str]:
    return ["--namespace", namespace] if namespace else []

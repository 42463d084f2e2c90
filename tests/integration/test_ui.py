"""`orchestrator ui` serves the MLflow UI on the configured store, runs included."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request

from orchestrator.tracking import start_run
from tests.servers import free_port, stop_process_group, wait_for_http


def test_ui_serves_the_local_store(in_tmp):
    run_id = start_run(f"sqlite:///{in_tmp}/mlflow.db", "ui-check", "a-run", {"task": "lm"})
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "orchestrator.cli", "ui", "--port", str(port),
         "tracking.experiment=ui-check"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        wait_for_http(f"{base}/health", server)
        url = f"{base}/ajax-api/2.0/mlflow/runs/get?run_id={run_id}"
        with urllib.request.urlopen(url, timeout=10) as response:
            run = json.load(response)["run"]
        assert run["info"]["run_name"] == "a-run"
    finally:
        stop_process_group(server)

"""`orchestrator ui` serves the MLflow UI on the configured store, runs included."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request

from mlflow.tracking import MlflowClient

from orchestrator.cli import main
from orchestrator.tracking import start_run
from tests.servers import free_port, start_mlflow_server, stop_process_group, wait_for_http


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


def test_ui_on_a_tracking_server_points_at_its_runs_page(in_tmp, monkeypatch, capsys):
    port = free_port()
    server = start_mlflow_server(in_tmp, port)
    try:
        base = f"http://127.0.0.1:{port}"
        start_run(base, "ui-server-check", "a-run", {"task": "lm"})
        experiment = MlflowClient(base).get_experiment_by_name("ui-server-check")
        monkeypatch.setenv("MLFLOW_TRACKING_URI", base)
        assert main(["ui", "tracking.experiment=ui-server-check"]) == 0
    finally:
        stop_process_group(server)
    out = capsys.readouterr().out.strip().splitlines()
    assert out[-1] == (f"MLflow UI of the tracking server: {base}/#/experiments/"
                       f"{experiment.experiment_id}/runs?workflowType=machine_learning")


def test_ui_on_a_dead_tracking_address_fails_in_one_line(in_tmp, monkeypatch, capsys):
    dead = f"http://127.0.0.1:{free_port()}"  # nothing listens: a stale shell variable, which
    # without the check cost minutes of MLflow's retries before any message
    monkeypatch.setenv("MLFLOW_TRACKING_URI", dead)
    assert main(["ui"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith(f"error: cannot reach the MLflow tracking server at {dead} (")

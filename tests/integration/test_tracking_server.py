"""A password-protected MLflow server (the basic-auth app) on loopback: right credentials
log the run, from the driver and the Ray workers; wrong ones fail before training."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import ray
from mlflow.tracking import MlflowClient

from orchestrator.cli import main
from orchestrator.launch import launch
from tests.servers import free_port, stop_process_group, wait_for_http
from tests.small_runs import small_config, small_overrides

ADMIN_PASSWORD = "a-long-admin-password-1"


@pytest.fixture(scope="module")
def auth_server(tmp_path_factory) -> str:
    folder: Path = tmp_path_factory.mktemp("mlflow-server")
    (folder / "auth.ini").write_text(
        "[mlflow]\ndefault_permission = READ\n"
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


def test_wrong_password_fails_before_anything_starts(auth_server, markov_dataset, tmp_path,
                                                     monkeypatch, capsys):
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "admin")
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", "not-the-password")
    monkeypatch.chdir(tmp_path)
    overrides = small_overrides(markov_dataset, tmp_path, f"tracking.uri={auth_server}")
    assert main(["launch", *overrides]) == 2
    err = capsys.readouterr().err.strip()
    assert err == (
        f"error: the MLflow tracking server at {auth_server} refused the credentials given "
        "(HTTP 401); set MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD (or "
        "MLFLOW_TRACKING_TOKEN) to an account of that server"
    )
    assert not ray.is_initialized()
    assert not (tmp_path / "runs").exists()


def test_right_password_logs_the_run_from_driver_and_workers(
    auth_server, local_ray, markov_dataset, tmp_path, monkeypatch
):
    # Ray's workers started before these were set: the launcher hands them over.
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "admin")
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", ADMIN_PASSWORD)
    config = small_config(markov_dataset, tmp_path, f"tracking.uri={auth_server}",
                          "train.max_epochs=1", "name=with-auth")
    result = launch(config)
    run = MlflowClient(auth_server).get_run(result.run_id)
    assert run.info.status == "FINISHED"
    assert "test_perplexity" in run.data.metrics  # logged by the rank-0 worker
    assert "samples.txt" in {a.path for a in MlflowClient(auth_server).list_artifacts(
        result.run_id)}

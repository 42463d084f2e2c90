"""A password-protected MLflow server (the basic-auth app) on loopback: right credentials
log the run, from the driver and the Ray workers; wrong ones fail before training."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import ray
from mlflow.tracking import MlflowClient

from orchestrator.cli import main
from orchestrator.launch import launch
from tests.servers import ADMIN_PASSWORD, auth_mlflow_server
from tests.small_runs import small_config, small_overrides


@pytest.fixture(scope="module")
def auth_server(tmp_path_factory) -> Iterator[str]:
    with auth_mlflow_server(tmp_path_factory.mktemp("mlflow-server")) as url:
        yield url


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

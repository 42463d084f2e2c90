"""A remote launch refuses what it cannot reach, in one line, before anything starts; no
password in an address or tracking URI appears in what it prints."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from orchestrator.cli import main
from orchestrator.errors import OrchestratorError
from orchestrator.remote import launch_remote
from tests.servers import free_port
from tests.small_runs import small_config

RAY = Path(sys.executable).with_name("ray")


def test_unreachable_jobs_api_is_a_clear_error(tmp_path, markov_dataset):
    config = small_config(markov_dataset, tmp_path)
    with pytest.raises(OrchestratorError, match=r"cannot reach the Ray Jobs API"):
        launch_remote(config, f"http://127.0.0.1:{free_port()}")


def test_other_schemes_are_refused(tmp_path, markov_dataset):
    with pytest.raises(OrchestratorError, match=r"neither http://HOST:8265"):
        launch_remote(small_config(markov_dataset, tmp_path), "tcp://127.0.0.1:6379")


def test_a_password_in_an_address_never_reaches_the_console(tmp_path, markov_dataset, capsys):
    address = f"http://alice:hunter2-secret@127.0.0.1:{free_port()}"
    config_args = [f"data.path={markov_dataset}", "data.sample=null",
                   f"tracking.uri=sqlite:///{tmp_path}/mlflow.db"]
    assert main(["launch", *config_args, "--address", address]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "cannot reach the Ray Jobs API at http://***@127.0.0.1" in err
    assert "hunter2" not in err and "alice" not in err


def test_a_tracking_uri_with_a_password_is_refused_without_echoing_it(capsys):
    assert main(["launch", "tracking.uri=https://alice:hunter2-secret@mlflow.example"]) == 2
    err = capsys.readouterr().err
    assert "tracking.uri 'https://***@mlflow.example' carries credentials" in err
    assert "hunter2" not in err and err.count("\n") == 1

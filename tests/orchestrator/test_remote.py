"""A remote launch refuses what it cannot reach, in one line, before anything starts."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

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

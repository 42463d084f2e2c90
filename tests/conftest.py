"""Shared fixtures: generated corpora on real shards, one local Ray instance, and new
MLflow stores built from a copy of the session's first."""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import pytest

from orchestrator.cli import main
from orchestrator.datasets.synthetic import markov_text
from orchestrator.datasets.synthetic_captions import write_shapes_folder
from orchestrator.datasets.text_shards import prepare_text


@pytest.fixture(scope="session", autouse=True)
def mlflow_stores_from_a_template(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Tests open hundreds of new sqlite MLflow stores, and MLflow builds each by running
    its schema migrations one by one (about 3 s of CPU a store here). The session's first
    store is built that way; each later new store in this process receives a byte copy
    of it (sqlite's backup API): the same schema at the same revision, still MLflow's
    own store. Stores that launches open in other processes build themselves as usual."""
    import sqlalchemy
    from mlflow.store.db import utils
    from mlflow.store.model_registry import sqlalchemy_store as registry_store

    build = utils._initialize_tables
    template = tmp_path_factory.mktemp("mlflow-template") / "mlflow.db"
    engine = sqlalchemy.create_engine(f"sqlite:///{template}")
    build(engine)
    engine.dispose()

    def copy_template(engine: sqlalchemy.engine.Engine) -> None:
        if engine.url.get_backend_name() != "sqlite":
            build(engine)
            return
        target = engine.raw_connection()
        try:
            with closing(sqlite3.connect(template)) as source:
                source.backup(target.driver_connection)
        finally:
            target.close()

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(utils, "_initialize_tables", copy_template)
        patch.setattr(registry_store, "_initialize_tables", copy_template)
        yield


@pytest.fixture(autouse=True)
def tracking_uri_left_as_found() -> Iterator[None]:
    """`mlflow.set_tracking_uri` sets MLflow's default store and, for subprocesses,
    $MLFLOW_TRACKING_URI; code under test calls it (Lightning's MLflow logger, the worker's
    metric logger). Left set, one test's store became a later test's default: in two test
    processes, `orchestrator ui` started after a metric-delivery test talked to that
    test's stopped server for minutes. Both are put back as they were."""
    from mlflow.tracking._tracking_service import utils

    default_before = utils._tracking_uri
    variable_before = os.environ.get("MLFLOW_TRACKING_URI")
    yield
    utils._tracking_uri = default_before
    if variable_before is None:
        os.environ.pop("MLFLOW_TRACKING_URI", None)
    else:
        os.environ["MLFLOW_TRACKING_URI"] = variable_before


@pytest.fixture
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Run in a fresh working directory, where the default MLflow store lands."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture(scope="session")
def markov_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The Markov corpus (perplexity 2 at best) as char shards.

    train: 3 shards of 15, 15 and 10 samples (an odd number of uneven shards);
    val and test: one shard each, so a second rank reads no shard at all.
    """
    out = tmp_path_factory.mktemp("markov")
    splits = {
        "train": markov_text(20_000, seed=1),
        "val": markov_text(2_000, seed=2),
        "test": markov_text(2_000, seed=3),
    }
    prepare_text(splits, out, "char", sample_tokens=500, samples_per_shard=15,
                 show_progress=False)
    return out


@pytest.fixture(scope="session")
def shape_captions(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Shards of 400 captioned shape images (10% val, 10% test), prepared by the CLI."""
    folder = tmp_path_factory.mktemp("shapes")
    captions = write_shapes_folder(folder / "raw", 400, seed=3)
    assert main(["data", "prepare", "captions", "--captions", str(captions), "--images",
                 str(folder / "raw" / "images"), "--out", str(folder / "shards"),
                 "--val-fraction", "0.1", "--test-fraction", "0.1"]) == 0
    return folder / "shards"


@pytest.fixture(scope="module")
def local_ray():
    """One local Ray instance per test module; never attaches to another cluster."""
    import ray

    ray.init(address="local", num_cpus=2, log_to_driver=False)
    yield ray
    ray.shutdown()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Everything in tests/integration/ starts Ray clusters, servers or remote jobs:
    marked, so `pytest -m "not integration"` is the fast loop."""
    for item in items:
        if item.path.parent.name == "integration":
            item.add_marker(pytest.mark.integration)

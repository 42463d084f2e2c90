"""Metrics a tracking server did not take: kept, sent again when it answers, written to
the run's folder past the bound, and replayed into the run. The store is a real sqlite
MLflow store; the server that is away is a loopback port nobody listens on."""

from __future__ import annotations

import json
import time
from collections.abc import Callable

import pytest
from mlflow.entities import Metric, Param
from mlflow.tracking import MlflowClient

from orchestrator import tracking, undelivered
from orchestrator.cli import main
from orchestrator.errors import OrchestratorError
from orchestrator.undelivered import OUTAGE_TAG, REPLAYED_TAG, Batch
from orchestrator.worker import metric_delivery
from orchestrator.worker.metric_delivery import KeepingClient, KeepingMLFlowLogger, MetricKeeper
from tests.servers import free_port


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> str:
    return f"sqlite:///{tmp_path_factory.mktemp('store')}/mlflow.db"


@pytest.fixture
def run_id(store: str) -> str:
    return tracking.start_run(store, "outages", "run", {})


@pytest.fixture
def away(monkeypatch: pytest.MonkeyPatch) -> str:
    """A tracking server that does not answer; MLflow gives up on it at once."""
    for name in metric_delivery.HTTP_SETTINGS:
        monkeypatch.setenv(name, "0" if name != "MLFLOW_HTTP_REQUEST_TIMEOUT" else "5")
    monkeypatch.setattr(metric_delivery, "RETRY_S", 0.1)  # the end of training's retries
    return f"http://127.0.0.1:{free_port()}"


def losses(run_id: str, steps: range) -> list[Metric]:
    return [Metric("train_loss", 1.0 / (step + 1), 1_000 + step, step) for step in steps]


def steps_in(store: str, run_id: str, key: str = "train_loss") -> list[int]:
    return sorted(m.step for m in MlflowClient(store).get_metric_history(run_id, key))


def until(condition: Callable[[], bool], timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_batches_mlflow_could_not_send_are_kept_and_sent_when_the_server_answers(
    away, store, run_id, tmp_path, monkeypatch
):
    # MLflow's queue merges what a window brings into one request, and reports its
    # failure to the first batch only: the others must be kept too
    monkeypatch.setenv("MLFLOW_ASYNC_LOGGING_BUFFERING_SECONDS", "1")
    keeper = MetricKeeper(MlflowClient(away), run_id, tmp_path / "undelivered")
    client = KeepingClient(away, keeper)
    for step in range(3):  # through MLflow's own queue, which fails on the server away
        client.log_batch(run_id, metrics=losses(run_id, range(step, step + 1)),
                         synchronous=False)
    until(lambda: keeper.in_outage)
    # from now on batches wait with the keeper: no request is made for them
    client.log_batch(run_id, metrics=losses(run_id, range(3, 5)), synchronous=False)
    assert not keeper.settled()
    keeper.client = MlflowClient(store)  # the server answers again
    keeper.ask()  # at the epoch's end
    until(keeper.settled)
    keeper.close()
    assert steps_in(store, run_id) == [0, 1, 2, 3, 4]
    assert not keeper.in_outage and not (tmp_path / "undelivered").exists()
    tag = MlflowClient(store).get_run(run_id).data.tags[OUTAGE_TAG]
    assert tag.startswith("1 outage(s), ") and tag.endswith("4 batches (5 values) delivered late")


def test_past_the_bound_they_are_written_to_the_folder_and_replayed_once(
    away, store, run_id, tmp_path, monkeypatch
):
    monkeypatch.setattr(undelivered, "SPILL_AFTER_VALUES", 4)
    folder = tmp_path / "undelivered"
    keeper = MetricKeeper(MlflowClient(away), run_id, folder)
    keeper.keep(Batch(run_id, losses(run_id, range(5)), [Param("lr", "0.1")]))
    until(lambda: (folder / undelivered.METRICS_FILE).exists())
    until(keeper.settled)  # nothing in memory any more
    keeper.close()
    lines = [json.loads(line) for line in (folder / undelivered.METRICS_FILE).open()]
    assert [len(line["metrics"]) for line in lines] == [5, 0]
    assert "6 values written to" in lines[-1]["tags"][OUTAGE_TAG]

    said = undelivered.replay(MlflowClient(store), folder)
    assert said.startswith(f"run {run_id}: 7 values and 0 artifacts replayed from ")
    run = MlflowClient(store).get_run(run_id)
    assert run.data.params == {"lr": "0.1"} and REPLAYED_TAG in run.data.tags
    assert steps_in(store, run_id) == [0, 1, 2, 3, 4]
    assert not folder.exists()  # renamed: a later launch does not send it again
    (replayed,) = tmp_path.glob("undelivered-replayed-*")
    undelivered.replay(MlflowClient(store), replayed)  # by hand, twice: nothing doubles
    assert steps_in(store, run_id) == [0, 1, 2, 3, 4]


def test_what_the_end_of_training_cannot_send_the_driver_replays(
    away, store, run_id, tmp_path
):
    folder = undelivered.spill_folder(str(tmp_path / "runs"), "run-name")
    logger = KeepingMLFlowLogger(away, run_id, folder)
    logger.experiment.log_batch(run_id, [Metric("val_perplexity", 2.5, 1_000, 7)],
                                synchronous=False)  # as Lightning's log_metrics does
    logger.log_tags({"ray.worker_nodes": "a,b"})
    started = time.monotonic()
    logger.finish({"samples.txt": "abcabc"}, wait_s=1.0)
    assert time.monotonic() - started < 15
    assert (folder / "artifacts" / run_id / "samples.txt").read_text() == "abcabc"

    undelivered.after_training(store, str(tmp_path / "runs"), "run-name")
    client = MlflowClient(store)
    run = client.get_run(run_id)
    assert run.data.metrics["val_perplexity"] == 2.5
    assert run.data.tags["ray.worker_nodes"] == "a,b"
    assert "values written to" in run.data.tags[OUTAGE_TAG]
    assert [a.path for a in client.list_artifacts(run_id)] == ["samples.txt"]


def test_a_batch_the_server_refuses_is_counted_and_the_rest_delivered(store, run_id, tmp_path):
    client = MlflowClient(store)
    client.log_param(run_id, "lr", "0.1")
    keeper = MetricKeeper(client, run_id, tmp_path / "undelivered")
    keeper.keep(Batch(run_id, params=[Param("lr", "0.2")]))  # params never change: 400
    keeper.keep(Batch(run_id, losses(run_id, range(3))))
    keeper.ask()
    until(keeper.settled)
    keeper.close()
    assert steps_in(store, run_id) == [0, 1, 2]
    assert "1 values refused by the server" in client.get_run(run_id).data.tags[OUTAGE_TAG]


def test_the_driver_waits_for_a_server_that_is_away_then_says_how_to_replay(away, tmp_path):
    with pytest.raises(OrchestratorError) as error:
        undelivered.wait_for_server(away, 0.0, tmp_path / "undelivered")
    assert f"the MLflow tracking server at {away} did not answer for 0 s" in str(error.value)
    assert f"`orchestrator replay {tmp_path / 'undelivered'} tracking.uri={away}`" in str(
        error.value)
    undelivered.wait_for_server("sqlite:///anywhere.db", 0.0, tmp_path)  # a store answers


def test_replay_command(store, run_id, tmp_path, capsys):
    folder = tmp_path / "undelivered"
    undelivered.append(folder, [Batch(run_id, losses(run_id, range(2)))])
    assert main(["replay", str(folder), f"tracking.uri={store}"]) == 0
    assert capsys.readouterr().out.startswith(f"run {run_id}: 2 values and 0 artifacts")
    assert steps_in(store, run_id) == [0, 1]
    assert main(["replay", str(folder), f"tracking.uri={store}"]) == 2
    assert capsys.readouterr().err.strip() == (
        f"error: {folder} holds no undelivered metrics or artifacts (no metrics.jsonl, "
        "no artifacts/)")

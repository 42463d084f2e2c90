"""The driver's line per epoch, read from a real MLflow store as the workers write it."""

from __future__ import annotations

import time

from mlflow.entities import Metric
from mlflow.tracking import MlflowClient

from orchestrator import progress
from orchestrator.progress import EpochProgress
from orchestrator.tracking import start_run


def log(client: MlflowClient, run_id: str, **values: float) -> None:
    now = int(time.time() * 1000)
    client.log_batch(run_id, metrics=[Metric(key, value, now, 0) for key, value in values.items()])


def test_one_line_per_epoch_with_score_loss_and_throughput(tmp_path, capsys):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    run_id = start_run(uri, "progress", "run", tags={})
    client = MlflowClient(uri)
    watcher = EpochProgress(uri, run_id, "language_model", max_epochs=3)
    watcher.print_new_epochs()
    assert capsys.readouterr().out == ""  # nothing validated yet
    log(client, run_id, val_perplexity=2.5, train_loss=0.9, train_tokens_per_sec=28_600)
    log(client, run_id, val_perplexity=1.75, train_loss=0.6)
    watcher.print_new_epochs()
    watcher.print_new_epochs()  # each epoch once
    lines = capsys.readouterr().out.splitlines()
    assert [line.split("  ")[:2] for line in lines] == [
        ["epoch 1/3", "val_perplexity 2.5"], ["epoch 2/3", "val_perplexity 1.75"]]
    assert "train_loss 0.6" in lines[1] and "28.6k tokens/s" in lines[1]
    # both epochs arrived in one poll: the first line does not claim the newest loss
    assert "train_loss" not in lines[0] and "tokens/s" not in lines[0]


def test_the_watcher_prints_while_the_block_runs_and_the_last_epoch_at_its_end(
        tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(progress, "POLL_S", 0.05)
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    run_id = start_run(uri, "progress", "run", tags={})
    client = MlflowClient(uri)
    with EpochProgress(uri, run_id, "translation", max_epochs=2):
        log(client, run_id, val_bleu=12.0)
        deadline = time.monotonic() + 10
        while "epoch 1/2" not in capsys.readouterr().out and time.monotonic() < deadline:
            time.sleep(0.05)
        assert time.monotonic() < deadline, "the first epoch was not printed while running"
        log(client, run_id, val_bleu=20.0)
    assert "epoch 2/2  val_bleu 20" in capsys.readouterr().out


def test_a_frame_labelling_run_counts_frames_per_second(tmp_path, capsys):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    run_id = start_run(uri, "progress", "run", tags={})
    log(MlflowClient(uri), run_id, val_frame_accuracy=0.9, train_tokens_per_sec=450)
    EpochProgress(uri, run_id, "video_frame_classification", max_epochs=4).print_new_epochs()
    assert "epoch 1/4  val_frame_accuracy 0.9  0.5k frames/s" in capsys.readouterr().out


def test_a_run_scored_in_the_background_shows_the_validation_loss_of_each_epoch(tmp_path,
                                                                              capsys):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    run_id = start_run(uri, "progress", "run", tags={})
    client = MlflowClient(uri)
    watcher = EpochProgress(uri, run_id, "translation", max_epochs=3, scored_in_background=True)
    log(client, run_id, val_loss=2.5, train_loss=2.9)
    watcher.print_new_epochs()
    log(client, run_id, val_bleu=20.0)  # epoch 1's background score, arriving later
    log(client, run_id, val_loss=2.0)
    watcher.print_new_epochs()
    lines = capsys.readouterr().out.splitlines()
    assert [line.split("  ")[:2] for line in lines] == [
        ["epoch 1/3", "val_loss 2.5"], ["epoch 2/3", "val_loss 2"]]

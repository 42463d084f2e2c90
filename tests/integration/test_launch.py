"""`orchestrator launch` for real: local Ray, 2 DDP workers, real shards, a real MLflow store."""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from mlflow.tracking import MlflowClient

from orchestrator.cli import main
from orchestrator.config import load_config
from orchestrator.errors import OrchestratorError
from orchestrator.launch import launch
from tests.small_runs import EPOCHS, STEPS_PER_EPOCH, small_config, small_overrides


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    path = tmp_path_factory.mktemp("launch")
    previous = Path.cwd()
    os.chdir(path)
    yield path
    os.chdir(previous)


@pytest.fixture(scope="module")
def launched(local_ray, markov_dataset, workdir):
    # 3 uneven train shards over 2 ranks: DDP would hang if ranks ran different batch counts.
    return launch(small_config(markov_dataset, workdir))


def test_two_worker_launch_finishes_with_one_finished_run(launched, workdir):
    client = MlflowClient(launched.tracking_uri)
    runs = client.search_runs([client.get_experiment_by_name("rnn-orchestrator").experiment_id])
    assert [run.info.status for run in runs] == ["FINISHED"]
    run = runs[0]
    assert run.info.run_id == launched.run_id
    assert run.data.params["model.cell"] == "lstm"
    assert run.data.params["ray.num_workers"] == "2"
    assert run.data.tags["task"] == "language_model"
    assert len(run.data.tags["ray.worker_nodes"].split(",")) == 2


def test_val_perplexity_decreases_every_epoch(launched):
    client = MlflowClient(launched.tracking_uri)
    history = [m.value for m in client.get_metric_history(launched.run_id, "val_perplexity")]
    assert len(history) == EPOCHS
    assert history == sorted(history, reverse=True) and len(set(history)) == EPOCHS, history
    # 9 symbols: a uniform guess has perplexity 9; the chain's best is 2.
    assert launched.metrics["test_perplexity"] < history[0] < 9


def test_grad_norm_and_train_loss_are_logged_every_step(launched):
    client = MlflowClient(launched.tracking_uri)
    for key in ("grad_norm", "train_loss"):
        history = client.get_metric_history(launched.run_id, key)
        assert [m.step for m in history] == list(range(EPOCHS * STEPS_PER_EPOCH)), key


def test_artifacts_hold_checkpoint_config_vocab_and_samples(launched, tmp_path):
    client = MlflowClient(launched.tracking_uri)
    names = {a.path for a in client.list_artifacts(launched.run_id)}
    assert {"checkpoint", "config.yaml", "vocab.json", "samples.txt"} <= names
    assert [a.path for a in client.list_artifacts(launched.run_id, "checkpoint")] == [
        "checkpoint/checkpoint.ckpt"
    ]
    local = client.download_artifacts(launched.run_id, "checkpoint/checkpoint.ckpt", tmp_path)
    assert Path(local).stat().st_size > 0


def test_generate_command_samples_from_the_checkpoint(launched, capsys):
    assert main(["generate", launched.checkpoint, "--prompt", "ab", "--length", "30"]) == 0
    text = capsys.readouterr().out.strip()
    assert text.startswith("ab") and len(text) == 32
    assert set(text) <= set("abcdefgh")


def test_nan_loss_fails_the_run_with_a_clear_message(launched, markov_dataset, workdir):
    # Weights near float32's limit: the first logits overflow and the loss is not finite.
    # It would on every retry too (ray.max_failures), so none is asked for.
    config = small_config(markov_dataset, workdir, "model.init_range=1e38", "name=diverges",
                          "ray.max_failures=0")
    with pytest.raises(OrchestratorError, match=r"training loss is (nan|inf).*lower optim.lr"):
        launch(config)
    client = MlflowClient(launched.tracking_uri)
    experiment = client.get_experiment_by_name("rnn-orchestrator").experiment_id
    statuses = {r.info.run_name.split("-2")[0]: r.info.status
                for r in client.search_runs([experiment])}
    assert statuses == {"quickstart-char-lstm": "FINISHED", "diverges": "FAILED"}


def test_sentiment_launch_on_its_sample_data_logs_accuracy_and_confusion_matrix(
    launched, workdir, monkeypatch, capsys
):
    config = load_config(None, [
        "task=sentiment", "model.bidirectional=true", "model.hidden_size=32",
        "model.embedding_dim=16", "model.num_layers=1", "train.max_epochs=2",
        "train.progress_bar=false", "optim.lr=0.01", "generate.prompts=[superb the film]",
        f"tracking.uri={launched.tracking_uri}", f"ray.storage_path={workdir}/runs",
        "name=sentiment",
    ])
    result = launch(config)  # generates the first_word sample into data/sample-first_word
    assert (workdir / "data" / "sample-first_word" / "dataset.json").is_file()
    client = MlflowClient(result.tracking_uri)
    run = client.get_run(result.run_id)
    assert run.info.status == "FINISHED"
    assert run.data.metrics["test_accuracy"] > 0.9
    assert 0 < run.data.metrics["test_macro_f1"] <= 1
    assert "confusion_matrix.png" in {a.path for a in client.list_artifacts(result.run_id)}
    assert result.samples == ["positive\tsuperb the film"]

    capsys.readouterr()
    monkeypatch.setattr("sys.stdin", io.StringIO("dreadful the plot of the film\n"))
    assert main(["classify", result.checkpoint]) == 0
    assert capsys.readouterr().out == "negative\tdreadful the plot of the film\n"


@pytest.fixture(scope="module")
def translated(launched, workdir):
    config = load_config(None, [
        "task=translation", "model.cell=gru", "model.embedding_dim=32", "model.hidden_size=64",
        "model.num_layers=1", "model.dropout=0.0", "model.bidirectional=true",
        "train.max_epochs=3", "train.progress_bar=false", "optim.lr=0.005",
        "eval.beam_sizes=[1,3]", "eval.val_bleu_batches=2", "data.batch_size=32",
        "generate.prompts=[9 may 1999]", f"tracking.uri={launched.tracking_uri}",
        f"ray.storage_path={workdir}/runs", "name=translation",
    ])
    return launch(config)  # generates the dates sample into data/sample-dates


def test_translation_launch_logs_bleu_per_beam_and_attention_maps(translated):
    client = MlflowClient(translated.tracking_uri)
    run = client.get_run(translated.run_id)
    assert run.info.status == "FINISHED"
    assert run.data.metrics["test_bleu_beam1"] > 80
    assert run.data.metrics["test_bleu_beam3"] > 80
    assert len(client.get_metric_history(translated.run_id, "val_bleu")) == 3
    names = {a.path for a in client.list_artifacts(translated.run_id)}
    assert {"translations.html", "bleu_signature.txt", "test_metrics_by_beam.csv",
            "test_metrics_by_beam.png", "attention"} <= names
    # the logged sample is the prompt and its translation, day and year swapped; the month
    # is left to BLEU (a 3-epoch model may miss one month while scoring above 80)
    [sample] = translated.samples
    assert re.fullmatch(r"9 may 1999\t1999 - (0[1-9]|1[0-2]) - 09", sample), sample


def test_eval_rescores_the_checkpoint_at_new_beam_sizes_into_a_new_run(translated, capsys):
    capsys.readouterr()
    uri_before = os.environ.get("MLFLOW_TRACKING_URI")
    assert main(["eval", translated.checkpoint, "eval.beam_sizes=[1,3,5]", "--log"]) == 0
    assert os.environ.get("MLFLOW_TRACKING_URI") == uri_before  # nothing leaks to later runs
    out = capsys.readouterr().out
    client = MlflowClient(translated.tracking_uri)
    logged = client.get_run(translated.run_id).data.metrics
    run = client.get_run(out.split("MLflow run: ")[1].split()[0])
    assert run.info.status == "FINISHED"
    assert run.data.tags["orchestrator.evaluated_checkpoint"] == translated.checkpoint
    assert run.data.params["eval.beam_sizes"] == "[1, 3, 5]"
    # the same weights on the same sentences: the launch's scores, plus the new beam size
    for beam in (1, 3):
        assert run.data.metrics[f"test_bleu_beam{beam}"] == pytest.approx(
            logged[f"test_bleu_beam{beam}"], abs=1e-6)
    assert run.data.metrics["test_bleu_beam5"] > 80
    assert f"test_bleu_beam5  {run.data.metrics['test_bleu_beam5']:.4f}" in out
    eval_artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"translations.html", "test_metrics_by_beam.csv"} <= eval_artifacts


def test_eval_of_the_checkpoint_as_its_own_ensemble_scores_as_it_does_alone(translated,
                                                                           capsys):
    capsys.readouterr()
    assert main(["eval", translated.checkpoint, "eval.beam_sizes=[3]",
                 "--ensemble", translated.checkpoint]) == 0
    logged = MlflowClient(translated.tracking_uri).get_run(translated.run_id).data.metrics
    assert f"test_bleu_beam3  {logged['test_bleu_beam3']:.4f}" in capsys.readouterr().out


def test_eval_validates_on_request_and_refuses_a_checkpoint_without_its_config(
    translated, tmp_path, capsys
):
    assert main(["eval", translated.checkpoint, "--split", "val"]) == 0
    assert "val_bleu" in capsys.readouterr().out
    stored = torch.load(translated.checkpoint, map_location="cpu", weights_only=True)
    config = tmp_path / "config.yaml"  # as MLflow keeps it with the run
    config.write_text(yaml.safe_dump(stored.pop("orchestrator_config")))
    torch.save(stored, tmp_path / "bare.ckpt")
    assert main(["eval", str(tmp_path / "bare.ckpt")]) == 2
    assert "carries no experiment config" in capsys.readouterr().err
    assert main(["eval", str(tmp_path / "bare.ckpt"), str(config), "eval.beam_sizes=[1]"]) == 0
    assert "test_bleu_beam1" in capsys.readouterr().out
    # the checkpoint's weights fix the model: a model override is refused, not ignored
    assert main(["eval", translated.checkpoint, "model.hidden_size=8"]) == 2
    assert "model.hidden_size=8" in capsys.readouterr().err


def test_average_of_the_last_epochs_is_validated_and_kept_when_better(local_ray, markov_dataset,
                                                                      tmp_path):
    result = launch(small_config(markov_dataset, tmp_path, "train.average_last=3",
                                 "name=averaged"))
    client = MlflowClient(result.tracking_uri)
    averaged = client.get_metric_history(result.run_id, "val_perplexity_average_last3")
    epochs = [m.value for m in client.get_metric_history(result.run_id, "val_perplexity")]
    assert len(averaged) == 1 and len(epochs) == EPOCHS  # the epochs' history is untouched
    # 2 DDP ranks validated the average together and agreed on whether it is the best
    assert averaged[0].value < 9 and result.metrics["test_perplexity"] < 9


def test_the_console_shows_a_line_per_epoch_and_stays_short(markov_dataset, tmp_path):
    """Workers' output stays in their Ray log files; the driver prints the epochs."""
    done = subprocess.run(
        [sys.executable, "-m", "orchestrator.cli", "launch",
         *small_overrides(markov_dataset, tmp_path)],
        cwd=tmp_path, capture_output=True, text=True, timeout=600, check=False,
    )
    lines = (done.stdout + done.stderr).splitlines()
    assert done.returncode == 0, done.stderr
    epochs = [line.split("  ")[0] for line in lines if line.startswith("epoch ")]
    assert epochs == [f"epoch {n}/{EPOCHS}" for n in range(1, EPOCHS + 1)], lines
    assert len(lines) < 40, "\n".join(lines)
    assert any(line.startswith("MLflow run: ") for line in lines)

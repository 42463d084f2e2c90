"""What a run page says about itself: the dataset input, standard tags, description, and
the experiment opening in MLflow's model-training view."""

from __future__ import annotations

import json
import sys

from mlflow.tracking import MlflowClient

from orchestrator.cli.ui import runs_page
from orchestrator.config import load_config
from orchestrator.datasets.manifest import load_manifest
from orchestrator.datasets.synthetic import markov_text
from orchestrator.datasets.text_shards import prepare_text
from orchestrator.run_description import dataset_input, standard_tags, started_by
from orchestrator.tracking import EXPERIMENT_KIND_TAG, start_run


def _dataset(folder, seed: int):
    splits = {name: markov_text(1_000, seed=seed + index)
              for index, name in enumerate(("train", "val", "test"))}
    prepare_text(splits, folder, "char", sample_tokens=200, samples_per_shard=2,
                 show_progress=False)
    return load_manifest(str(folder))


def test_the_dataset_input_names_the_data_and_tells_two_datasets_apart(tmp_path):
    first, second = _dataset(tmp_path / "a", seed=1), _dataset(tmp_path / "b", seed=7)
    config = load_config(None, [f"data.path={tmp_path / 'a'}"])
    one = dataset_input(config, first).dataset
    assert one.name == "a" and json.loads(one.source)["uri"] == str(tmp_path / "a")
    profile = json.loads(one.profile)
    assert profile["train"]["samples"] == first.splits["train"].samples
    assert profile["test"]["shards"] == len(first.splits["test"].shards)
    other = dataset_input(load_config(None, [f"data.path={tmp_path / 'b'}"]), second).dataset
    assert other.digest != one.digest  # other shards, other checksums
    assert dataset_input(config, first).dataset.digest == one.digest  # stable


def test_the_command_is_recorded_without_passwords(monkeypatch):
    monkeypatch.setattr(sys, "argv", ["/usr/bin/orchestrator", "launch",
                                      "ray.address=http://alice:s3cret@head:8265"])
    command = started_by()
    assert command.startswith("orchestrator launch") and "s3cret" not in command
    tags = standard_tags(load_config(None, ["task=sentiment"]), command, "abc123")
    assert tags["mlflow.source.git.commit"] == "abc123"
    assert "sentiment" in tags["mlflow.note.content"] and command in tags["mlflow.note.content"]


def test_experiments_open_in_the_model_training_view(tmp_path):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    client = MlflowClient(uri)
    old = client.create_experiment("made-by-hand")  # no kind yet: start_run adds it
    start_run(uri, "made-by-hand", "run", {})
    start_run(uri, "new-one", "run", {})
    for name in ("made-by-hand", "new-one"):
        experiment = client.get_experiment_by_name(name)
        assert experiment.tags[EXPERIMENT_KIND_TAG] == "custom_model_development"
    page = runs_page("http://127.0.0.1:5000", client, "made-by-hand")
    assert page == (f"http://127.0.0.1:5000/#/experiments/{old}/runs"
                    "?workflowType=machine_learning")
    assert runs_page("http://h:1", client, "none-yet") == "http://h:1/"


def test_a_label_smoothed_loss_is_explained_where_it_misleads():
    smoothed = load_config(None, ["task=translation", "model.label_smoothing=0.1"])
    note = standard_tags(smoothed, "orchestrator launch", "abc")["mlflow.note.content"]
    assert "label smoothing (0.1)" in note and "val_loss" in note
    plain = load_config(None, ["task=translation"])
    assert "label smoothing" not in standard_tags(plain, "x", "abc")["mlflow.note.content"]

"""Frame-level video classification: a bi-directional RNN over per-frame CNN features
learns the `curtain_shapes` labels (real mp4 clips, real shards), and its checkpoint labels
clip files through `orchestrator label-frames` as it did in training."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch

from orchestrator.cli import main
from orchestrator.config import load_config
from orchestrator.datasets.caption_shards import split_items
from orchestrator.datasets.frame_label_shards import prepare_frame_labels, read_frame_labels
from orchestrator.datasets.synthetic_frames import write_curtain_shapes_folder
from orchestrator.datasets.video_frames import uniform_indices
from orchestrator.lightning_modules.throughput import tokens_in
from orchestrator.run_files import CONFIG_KEY
from orchestrator.worker.tasks import TASKS

FRAMES = 12  # every frame of a curtain_shapes clip


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> tuple[Path, Path]:
    """(the raw clips with their label lists, their shards): 480 train, 48 val, 48 test."""
    folder = tmp_path_factory.mktemp("curtain_shapes")
    videos = write_curtain_shapes_folder(folder / "raw", 576, seed=2)
    splits = split_items(read_frame_labels(videos), 1 / 12, 1 / 12, seed=2)
    prepare_frame_labels(splits, folder / "shards", samples_per_shard=120, show_progress=False)
    return videos, folder / "shards"


@pytest.fixture(scope="module")
def trained(clips, tmp_path_factory) -> tuple[Path, dict, dict]:
    """The trained model's checkpoint (as a launch writes it), its test scores and the
    artifacts its test left."""
    _, shards = clips
    config = load_config(None, [
        "task=video_frame_classification", f"data.path={shards}", "data.image_size=32",
        f"data.frames={FRAMES}", "data.batch_size=16", "data.num_workers=0",
        "model.cell=gru", "model.hidden_size=64", "model.num_layers=1", "model.dropout=0.0",
        "model.bidirectional=true", "optim.lr=0.002",
    ])
    pl.seed_everything(0, verbose=False)
    spec = TASKS[config.task]
    datamodule = spec.build_datamodule(config)
    module = spec.build_module(config, datamodule)
    trainer = pl.Trainer(max_epochs=4, accelerator="cpu", logger=False,
                         enable_progress_bar=False, enable_checkpointing=False,
                         enable_model_summary=False, num_sanity_val_steps=0,
                         gradient_clip_val=config.optim.clip)
    trainer.fit(module, datamodule=datamodule)
    [scores] = trainer.test(module, datamodule=datamodule, verbose=False)
    checkpoint = tmp_path_factory.mktemp("trained") / "frames.ckpt"
    torch.save({"state_dict": module.state_dict(), "hyper_parameters": dict(module.hparams),
                CONFIG_KEY: config.model_dump()}, checkpoint)
    return checkpoint, scores, module.artifacts


def test_a_bidirectional_model_labels_the_synthetic_frames(trained):
    _, scores, _ = trained
    # a curtain frame (about one in five) is known only from the frames after it
    assert scores["test_frame_accuracy"] >= 0.95, scores
    assert scores["test_frame_macro_f1"] >= 0.95, scores


def test_the_test_leaves_a_picture_of_frames_with_their_labels_and_predictions(trained):
    _, _, artifacts = trained
    figure = artifacts["frame_labels.png"]
    axes = figure.get_axes()
    assert len(axes) == 6 * FRAMES  # the first 6 test clips, every sampled frame
    titles = [axis.get_title().split("\n") for axis in axes]
    assert all(len(pair) == 2 and {*pair} <= {"circle", "square", "triangle"} for pair in titles)
    wrong = [axis for axis, (label, guess) in zip(axes, titles, strict=True) if label != guess]
    assert all(axis.title.get_color() == "red" for axis in wrong)


def test_label_frames_reads_clip_files_as_training_read_them(trained, clips, capsys):
    checkpoint, _, _ = trained
    videos, _ = clips
    files = sorted(videos.glob("*.mp4"))[:6]
    assert main(["label-frames", str(checkpoint), *map(str, files)]) == 0
    lines = capsys.readouterr().out.splitlines()
    right = total = 0
    for path, line in zip(files, lines, strict=True):
        name, labels = line.split("\t")
        assert name == str(path) and len(labels.split()) == FRAMES
        truth = json.loads(path.with_suffix(".json").read_text())
        expected = [truth[i] for i in uniform_indices(len(truth), FRAMES)]
        right += sum(a == b for a, b in zip(labels.split(), expected, strict=True))
        total += FRAMES
    assert right / total >= 0.9, lines


def test_caption_refuses_a_frame_classifier_checkpoint(trained, clips, capsys):
    checkpoint, _, _ = trained
    videos, _ = clips
    assert main(["caption", str(checkpoint), str(next(videos.glob("*.mp4")))]) != 0
    error = capsys.readouterr().err
    assert "holds a video_frame_classification" in error and "captioning" in error


def test_throughput_counts_labelled_frames_as_tokens():
    batch = {"frames": torch.zeros(2, 5, 3, 8, 8), "labels": torch.zeros(2, 5, dtype=torch.long),
             "ids": ["a", "b"]}
    assert tokens_in(batch) == 10

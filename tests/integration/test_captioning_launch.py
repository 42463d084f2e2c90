"""The synthetic image and video captioning tasks are learned to CIDEr-D >= 1.0 through
`orchestrator launch` (2 Ray workers streaming real tar shards); `caption` reads files."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from orchestrator.cli import main
from orchestrator.config import load_config
from orchestrator.datasets.synthetic_captions import (
    write_moving_shapes_folder,
    write_shapes_folder,
)
from orchestrator.launch import launch

VOCAB, PAD, BOS, EOS = 12, 2, 3, 1


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    path = tmp_path_factory.mktemp("captioning")
    previous = Path.cwd()
    os.chdir(path)
    yield path
    os.chdir(previous)


def small_captioning(task: str, workdir: Path, *extra: str):
    """A tiny model on the task's generated sample data (made in workdir/data on first use)."""
    return load_config(None, [
        f"task={task}", f"name={task.replace('_', '-')}", "model.embedding_dim=32",
        "model.hidden_size=64", "model.num_layers=1", "model.dropout=0.0",
        "data.image_size=32", "data.batch_size=16", "data.num_workers=1",
        "train.progress_bar=false", "optim.lr=0.003", "eval.beam_sizes=[1,3]",
        "eval.max_length=12", "eval.val_bleu_batches=4", "eval.meteor=false",
        f"tracking.uri=sqlite:///{workdir}/mlflow.db", f"ray.storage_path={workdir}/runs",
        *extra,
    ])


def check_run(result, min_cider: float = 1.0) -> MlflowClient:
    client = MlflowClient(result.tracking_uri)
    run = client.get_run(result.run_id)
    assert run.info.status == "FINISHED"
    for beam in (1, 3):
        assert run.data.metrics[f"test_cider_d_beam{beam}"] >= min_cider, run.data.metrics
        assert 0 < run.data.metrics[f"test_bleu_4_beam{beam}"] <= 1
    assert len(client.get_metric_history(result.run_id, "val_cider_d")) >= 2
    names = {a.path for a in client.list_artifacts(result.run_id)}
    assert {"captions.html", "test_captions.jsonl", "test_metrics_by_beam.csv",
            "test_metrics_by_beam.png", "caption_metrics.txt", "attention"} <= names
    return client


@pytest.fixture(scope="module")
def image_captioned(local_ray, workdir):
    return launch(small_captioning("image_captioning", workdir, "train.max_epochs=3",
                                   "train.batches_per_epoch=40"))


def test_image_captioning_launch_learns_shapes_to_cider_d_1(image_captioned, workdir, capsys):
    result = image_captioned
    check_run(result)
    assert len(result.samples) == 4 and all("\t" in line for line in result.samples)

    images = write_shapes_folder(workdir / "raw_images", 2, seed=99).parent / "images"
    files = sorted(str(path) for path in images.iterdir())
    capsys.readouterr()
    assert main(["caption", result.checkpoint, *files, "--beam-size", "3"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split("\t")[0] for line in lines] == files
    assert all(len(line.split("\t")[1].split()) >= 3 for line in lines)


def test_scst_continues_from_the_cross_entropy_weights_on_two_workers(image_captioned,
                                                                        workdir):
    """Self-critical training from the launch above: its reward curves are in MLflow and
    its captions are still good."""
    result = launch(small_captioning(
        "image_captioning", workdir, "name=image-captioning-scst", "train.max_epochs=2",
        "train.batches_per_epoch=8", "optim.lr=0.0003", "train.objective=scst",
        "train.scst.samples=3", f"train.init_from={image_captioned.checkpoint}"))
    client = check_run(result)
    run = client.get_run(result.run_id)
    assert run.data.params["train.objective"] == "scst"
    assert run.data.params["train.init_from"] == image_captioned.checkpoint
    rewards = client.get_metric_history(result.run_id, "train_reward")
    baselines = client.get_metric_history(result.run_id, "train_baseline_reward")
    assert len(rewards) == len(baselines) == 16  # every step of 2 epochs (rank 0's)
    assert all(0 <= metric.value <= 10 for metric in rewards + baselines)


def test_video_captioning_launch_learns_moving_shapes_to_cider_d_1(local_ray, workdir, capsys):
    result = launch(small_captioning("video_captioning", workdir, "train.max_epochs=3",
                                     "train.batches_per_epoch=30", "data.frames=8"))
    check_run(result)

    clips = write_moving_shapes_folder(workdir / "raw_clips", 2, seed=99).parent / "videos"
    files = sorted(str(path) for path in clips.iterdir())
    capsys.readouterr()
    assert main(["caption", result.checkpoint, *files]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split("\t")[0] for line in lines] == files
    image = write_shapes_folder(workdir / "an_image", 1).parent / "images" / "000000.png"
    assert main(["caption", result.checkpoint, str(image)]) == 2
    assert "the checkpoint reads videos" in capsys.readouterr().err

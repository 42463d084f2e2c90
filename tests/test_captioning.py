"""Captioning models: teacher forcing and the search's one-step decoding agree for every cell
and feature use; the synthetic image and video tasks are learned to CIDEr-D >= 1.0 through
`orchestrator launch` (2 Ray workers streaming real tar shards); `caption` reads files."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from mlflow.tracking import MlflowClient

from orchestrator.cli import main
from orchestrator.config import load_config
from orchestrator.datasets.synthetic_captions import (
    write_moving_shapes_folder,
    write_shapes_folder,
)
from orchestrator.launch import launch
from orchestrator.lightning_modules.decoding import BeamSearch, DecodingConfig
from orchestrator.lightning_modules.image_captioner import ImageCaptioner, ImageCaptionerConfig
from orchestrator.lightning_modules.video_captioner import VideoCaptioner, VideoCaptionerConfig

VOCAB, PAD, BOS, EOS = 12, 2, 3, 1


@pytest.fixture(autouse=True)
def few_threads():
    """Tensors here are small: more threads only fight the other jobs on the machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def step_by_step(model: torch.nn.Module, pixels: torch.Tensor, tgt_in: torch.Tensor):
    state = model.encode(pixels)
    steps = []
    for t in range(tgt_in.size(1)):
        log_probs, state, _ = model.step(tgt_in[:, t], state)
        steps.append(log_probs)
    return torch.stack(steps, dim=1)


@pytest.mark.parametrize("cell", ["rnn", "gru", "lstm"])
@pytest.mark.parametrize("feature_as", ["init_state", "first_input"])
@pytest.mark.parametrize("attention", [True, False])
def test_image_captioner_steps_match_teacher_forcing(cell, feature_as, attention):
    torch.manual_seed(0)
    model = ImageCaptioner(ImageCaptionerConfig(
        VOCAB, cell=cell, embedding_dim=8, hidden_size=16, num_layers=2, dropout=0.0,
        visual_attention=attention, feature_as=feature_as)).eval()
    images, tgt_in = torch.randn(3, 3, 32, 32), torch.randint(4, VOCAB, (3, 5))
    with torch.no_grad():
        forced = torch.log_softmax(model(images, tgt_in), dim=-1)
        assert torch.allclose(forced, step_by_step(model, images, tgt_in), atol=1e-5)


@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_video_captioner_steps_match_teacher_forcing(cell):
    torch.manual_seed(0)
    model = VideoCaptioner(VideoCaptionerConfig(
        VOCAB, cell=cell, embedding_dim=8, hidden_size=16, dropout=0.0,
        visual_attention=True)).eval()
    frames, tgt_in = torch.randn(2, 5, 3, 16, 16), torch.randint(4, VOCAB, (2, 4))
    with torch.no_grad():
        forced = torch.log_softmax(model(frames, tgt_in), dim=-1)
        assert torch.allclose(forced, step_by_step(model, frames, tgt_in), atol=1e-5)


def test_beam_search_returns_attention_over_the_feature_map():
    model = ImageCaptioner(ImageCaptionerConfig(VOCAB, embedding_dim=8, hidden_size=16)).eval()
    images = torch.randn(2, 3, 32, 32)  # small_cnn: a 4x4 map, 16 positions
    search = BeamSearch(DecodingConfig(bos_id=BOS, eos_id=EOS, pad_id=PAD, beam_size=3,
                                       max_length=6))
    for (best,) in search.search(model, model.encode(images), batch_size=2):
        assert best.attention.shape == (len(best.tokens) + 1, 16)
        assert torch.allclose(best.attention.sum(dim=1), torch.ones(len(best.tokens) + 1))


# Through `orchestrator launch`: 2 Ray DDP workers, each streaming its share of the shards.

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
    assert {"captions_page.png", "captions.md", "caption_metrics.txt", "attention"} <= names
    return client


def test_image_captioning_launch_learns_shapes_to_cider_d_1(local_ray, workdir, capsys):
    result = launch(small_captioning("image_captioning", workdir, "train.max_epochs=3",
                                     "train.batches_per_epoch=40"))
    check_run(result)
    assert len(result.samples) == 4 and all("\t" in line for line in result.samples)

    images = write_shapes_folder(workdir / "raw_images", 2, seed=99).parent / "images"
    files = sorted(str(path) for path in images.iterdir())
    capsys.readouterr()
    assert main(["caption", result.checkpoint, *files, "--beam-size", "3"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split("\t")[0] for line in lines] == files
    assert all(len(line.split("\t")[1].split()) >= 3 for line in lines)


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
    assert "the checkpoint is a video captioner" in capsys.readouterr().err

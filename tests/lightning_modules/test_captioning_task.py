"""The captioning tasks' test leaves what a user opens in MLflow: an HTML captions page with
every test image inline, every item's captions and scores as JSON lines, the scores by beam
size as logged, and attention pictures with a colour bar (over the image, or over the frames
of a clip)."""

from __future__ import annotations

import base64
import copy
import csv
import io
import json
import re
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch
from PIL import Image
from torch.utils.data import DataLoader

from orchestrator.config import EvalConfig, OptimConfig
from orchestrator.datasets.caption_data import CaptionDataModule
from orchestrator.lightning_modules.captioning import (
    CAPTIONS_FILE,
    ImageCaptioningTask,
    VideoCaptioningTask,
)
from orchestrator.lightning_modules.image_captioner import ImageCaptionerConfig
from orchestrator.lightning_modules.video_captioner import VideoCaptionerConfig
from orchestrator.worker.tasks import join_ensemble
from tests.models import settings

EVAL = EvalConfig(beam_sizes=[1, 3], max_length=12, val_bleu_batches=2,
                  meteor=False).model_dump()


@pytest.fixture(scope="module")
def tested(shape_captions):
    """A small attention captioner, trained briefly, then tested at beam sizes 1 and 3."""
    pl.seed_everything(0, verbose=False)
    datamodule = CaptionDataModule(str(shape_captions), batch_size=16, num_workers=0, image_size=32,
                                   batches_per_epoch=20)
    task = ImageCaptioningTask(
        model=settings(ImageCaptionerConfig, embedding_dim=32, hidden_size=64, num_layers=1,
                       dropout=0.0, visual_attention=True),
        optim={**OptimConfig().model_dump(), "lr": 3e-3}, eval_settings=EVAL,
        vocab=datamodule.vocab.tokens, media={"kind": "image", "image_size": 32, "frames": 1})
    trainer = pl.Trainer(max_epochs=3, accelerator="cpu", logger=False,
                         enable_progress_bar=False, enable_checkpointing=False,
                         enable_model_summary=False, num_sanity_val_steps=0)
    trainer.fit(task, datamodule=datamodule)
    metrics = trainer.test(task, datamodule=datamodule, verbose=False)[0]
    return task, metrics


def test_the_captions_page_shows_every_test_image_inline(tested):
    task, _ = tested
    assert not {"captions.md", "captions_page.png"} & set(task.artifacts)
    page = task.artifacts["captions.html"]
    pictures = re.findall(r'src="data:image/jpeg;base64,([A-Za-z0-9+/=]+)"', page)
    assert len(pictures) == 40 and "all 40 test items" in page
    image = Image.open(io.BytesIO(base64.b64decode(pictures[0])))
    assert image.size == (32, 32) and image.mode == "RGB"
    assert page.count("<th>beam 1</th>") == 1 and page.count("<th>beam 3</th>") == 1
    assert "from the 40 test items' references" in task.artifacts["caption_metrics.txt"]


def test_every_test_item_is_a_line_whose_scores_average_to_the_logged_cider_d(tested):
    task, metrics = tested
    items = [json.loads(line) for line in task.artifacts[CAPTIONS_FILE].splitlines()]
    assert len(items) == 40 and len({item["id"] for item in items}) == 40
    assert all(len(item["references"]) >= 1 and set(item["captions"]) == {"1", "3"}
               for item in items)
    for beam in (1, 3):
        mean = sum(item["cider_d"][str(beam)] for item in items) / len(items)
        assert mean == pytest.approx(metrics[f"test_cider_d_beam{beam}"], rel=1e-5)


def test_a_captioner_as_its_own_ensemble_captions_as_it_does_alone(tested, shape_captions):
    task, _ = tested
    datamodule = CaptionDataModule(str(shape_captions), batch_size=16, num_workers=0, image_size=32)
    pixels = next(iter(datamodule.test_dataloader()))["images"]
    task = copy.deepcopy(task).eval()  # as a checkpoint loads: batch norm's running stats
    alone = task.caption(pixels, 3)
    pair = join_ensemble([copy.deepcopy(task), copy.deepcopy(task)], [Path("a"), Path("b")])
    assert pair.caption(pixels, 3) == alone and len(set(alone)) > 1


def test_the_beam_table_holds_the_logged_scores(tested):
    task, metrics = tested
    rows = list(csv.DictReader(io.StringIO(task.artifacts["test_metrics_by_beam.csv"])))
    assert [int(row["beam_size"]) for row in rows] == [1, 3]
    for row in rows:
        for name in ("bleu_1", "bleu_4", "cider_d"):
            logged = metrics[f"test_{name}_beam{row['beam_size']}"]
            assert float(row[name]) == pytest.approx(logged, rel=1e-6)
    assert len(task.artifacts["test_metrics_by_beam.png"].axes) == 5  # BLEU-1..4, CIDEr-D


def test_attention_is_drawn_for_the_longest_captions_with_a_colour_bar(tested):
    task, _ = tested
    names = sorted(name for name in task.artifacts if name.startswith("attention/"))
    assert names == [f"attention/example_{n}.png" for n in range(3)]
    figure = task.artifacts["attention/example_0.png"]
    colour_bar = figure.axes[-1]
    assert colour_bar.get_ylabel().startswith("attention weight")
    first, *panels = [axes.get_title() for axes in figure.axes[:-1]]
    assert first == "input" and panels[-1] == "<eos>"
    words = panels
    assert figure.texts[0].get_text().startswith(" ".join(words[:-1]))  # the caption, on top


def test_a_video_captioners_page_shows_frame_strips_and_its_attention_spans_the_frames():
    torch.manual_seed(0)
    vocab = ["<unk>", "<eos>", "<pad>", "<bos>", "a", "red", "circle", "moves", "left"]
    task = VideoCaptioningTask(
        model=settings(VideoCaptionerConfig, embedding_dim=8, hidden_size=16, num_layers=1,
                       dropout=0.0, visual_attention=True),
        optim=OptimConfig().model_dump(), eval_settings={**EVAL, "max_length": 6},
        vocab=vocab, media={"kind": "video", "image_size": 16, "frames": 5})
    batches = [{"frames": torch.randn(2, 5, 3, 16, 16), "ids": [f"clip{b}{n}" for n in range(2)],
                "references": [["a red circle moves left"]] * 2} for b in range(2)]
    trainer = pl.Trainer(accelerator="cpu", logger=False, enable_progress_bar=False,
                         enable_model_summary=False)
    trainer.test(task, dataloaders=DataLoader(batches, batch_size=None), verbose=False)
    page = task.artifacts["captions.html"]
    pictures = re.findall(r'src="data:image/jpeg;base64,([A-Za-z0-9+/=]+)"', page)
    assert len(pictures) == 4 and "4 evenly spaced frames of 5" in page
    assert Image.open(io.BytesIO(base64.b64decode(pictures[0]))).size == (4 * 16, 16)
    heatmap, colour_bar = task.artifacts["attention/example_0.png"].axes
    assert [label.get_text() for label in heatmap.get_xticklabels()] == list("12345")
    assert heatmap.get_yticklabels()[-1].get_text() == "<eos>"
    assert colour_bar.get_ylabel() == "attention weight"

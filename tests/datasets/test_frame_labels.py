"""Clips labelled frame by frame: the `curtain_shapes` sample, `data prepare frame-labels`
(real mp4 clips, real tar shards) and the DataModule that keeps each frame's label."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest

from orchestrator.cli import main
from orchestrator.datasets.frame_label_data import FrameLabelDataModule
from orchestrator.datasets.frame_label_shards import prepare_frame_labels, read_frame_labels
from orchestrator.datasets.synthetic_frames import (
    CURTAIN_GREY,
    curtain_shapes_clip,
    write_curtain_shapes_folder,
)
from orchestrator.datasets.video_frames import encode_mp4, uniform_indices


def test_each_act_opens_with_a_curtain_labelled_with_the_shape_that_follows():
    rng = random.Random(3)
    for _ in range(20):
        clip, labels = curtain_shapes_clip(rng, frames=12)
        assert clip.shape == (12, 32, 32, 3) and len(labels) == 12
        curtains = [bool((frame == CURTAIN_GREY).all()) for frame in clip]
        assert curtains[0]  # the clip opens on a curtain: frame 0 shows nothing
        acts = [i for i in range(12) if i == 0 or labels[i] != labels[i - 1]]
        assert len(acts) in (2, 3)
        for start in acts:  # a curtain before every act, a shape after it
            assert curtains[start]
            shown = next(i for i in range(start, 12) if not curtains[i])
            assert labels[shown] == labels[start] and clip[shown].max() > 0
        assert sum(curtains) <= 2 * len(acts)


def test_prepare_reads_the_label_lists_and_batches_keep_each_frames_label(tmp_path, capsys):
    videos = write_curtain_shapes_folder(tmp_path / "raw", 24, seed=1)
    out = tmp_path / "shards"
    assert main(["data", "prepare", "frame-labels", "--videos", str(videos), "--out", str(out),
                 "--val-fraction", "0.25", "--test-fraction", "0.25"]) == 0
    assert "labels: circle, square, triangle" in capsys.readouterr().out
    data = FrameLabelDataModule(str(out), batch_size=4, num_workers=0, image_size=16, frames=6)
    batch = next(iter(data.val_dataloader()))
    assert batch["frames"].shape == (4, 6, 3, 16, 16) and batch["labels"].shape == (4, 6)
    for clip_id, row in zip(batch["ids"], batch["labels"].tolist(), strict=True):
        stored = json.loads((videos / f"{clip_id}.json").read_text())
        picked = [stored[i] for i in uniform_indices(12, 6)]
        assert [data.labels[i] for i in row] == picked


def write_clip(videos: Path, name: str, frames: int, labels: object) -> None:
    videos.mkdir(parents=True, exist_ok=True)
    (videos / f"{name}.mp4").write_bytes(encode_mp4(np.zeros((frames, 16, 16, 3), np.uint8)))
    if labels is not None:
        (videos / f"{name}.json").write_text(json.dumps(labels))


@pytest.mark.parametrize(("labels", "named"), [
    (["a"] * 5, "clip.json has 5 labels for the 6 frames of clip.mp4"),
    (None, "clip.mp4: no label list clip.json beside it"),
    ({"labels": ["a"] * 6}, "clip.json is not a JSON list of label names"),
])
def test_a_bad_label_list_is_one_line_naming_the_file(tmp_path, capsys, labels, named):
    write_clip(tmp_path / "videos", "clip", 6, labels)
    write_clip(tmp_path / "videos", "good", 6, ["a"] * 6)
    code = main(["data", "prepare", "frame-labels", "--videos", str(tmp_path / "videos"),
                 "--out", str(tmp_path / "out")])
    error = capsys.readouterr().err
    assert code != 0 and named in error and len(error.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()  # nothing written


def test_a_label_never_seen_in_training_is_refused(tmp_path):
    videos = tmp_path / "videos"
    write_clip(videos, "walking", 4, ["walk"] * 4)
    write_clip(videos, "jumping", 4, ["walk", "walk", "jump", "jump"])
    clips = {clip.id: clip for clip in read_frame_labels(videos)}
    splits = {"train": [clips["walking"]], "test": [clips["jumping"]]}
    with pytest.raises(ValueError, match="labels jump occur in test but not in train"):
        prepare_frame_labels(splits, tmp_path / "out", show_progress=False)

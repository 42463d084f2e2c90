"""Captioning data: `data prepare captions|video` from the Flickr8k, COCO and MSR-VTT layouts,
splits by image, clear errors naming missing images and unreadable clips, and clips
decoded from shards to exactly the requested number of frames."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import webdataset as wds

from orchestrator.cli import main
from orchestrator.datasets.caption_data import CaptionDataModule, VideoCaptionDataModule
from orchestrator.datasets.caption_text import caption_words
from orchestrator.datasets.images import encode_png, to_pixels
from orchestrator.datasets.synthetic_captions import write_shapes_folder
from orchestrator.datasets.tokenizer import BOS, EOS
from orchestrator.datasets.video_frames import encode_mp4, uniform_indices


def items_by_split(out: Path) -> dict[str, list[dict]]:
    manifest = json.loads((out / "dataset.json").read_text())
    found = {}
    for split, info in manifest["splits"].items():
        urls = [str(out / shard) for shard in info["shards"]]
        found[split] = [json.loads(s["json"]) for s in wds.WebDataset(urls, shardshuffle=False)]
    return found


def test_flickr_layout_splits_by_image_with_all_references(tmp_path, capsys):
    captions = write_shapes_folder(tmp_path / "raw", 60, seed=3)
    out = tmp_path / "shards"
    assert main(["data", "prepare", "captions", "--captions", str(captions), "--images",
                 str(tmp_path / "raw" / "images"), "--out", str(out),
                 "--samples-per-shard", "20"]) == 0
    assert "test shards" in capsys.readouterr().err  # the progress bar
    splits = items_by_split(out)
    assert {name: len(items) for name, items in splits.items()} == {
        "train": 48, "val": 6, "test": 6}
    ids = [item["id"] for items in splits.values() for item in items]
    assert len(ids) == len(set(ids)) == 60  # every image in exactly one split
    assert all(len(item["captions"]) == 3 for items in splits.values() for item in items)


def test_coco_layout_reads_annotations_per_image(tmp_path):
    (tmp_path / "val2014").mkdir()
    pixels = np.zeros((16, 16, 3), np.uint8)
    for number in range(4):
        (tmp_path / "val2014" / f"COCO_val2014_{number:012d}.jpg").write_bytes(encode_png(pixels))
    data = {"images": [{"id": n, "file_name": f"COCO_val2014_{n:012d}.jpg"} for n in range(4)],
            "annotations": [{"image_id": n % 4, "id": n, "caption": f"A cat number {n}."}
                            for n in range(8)]}
    (tmp_path / "captions_val2014.json").write_text(json.dumps(data))
    out = tmp_path / "shards"
    assert main(["data", "prepare", "captions", "--captions",
                 str(tmp_path / "captions_val2014.json"), "--images", str(tmp_path),
                 "--out", str(out), "--val-fraction", "0.25", "--test-fraction", "0.25"]) == 0
    splits = items_by_split(out)
    assert sorted(len(items) for items in splits.values()) == [1, 1, 2]
    first = next(item for items in splits.values() for item in items if item["id"] == "1")
    assert first["captions"] == ["A cat number 1.", "A cat number 5."]


def test_a_caption_naming_a_missing_image_is_one_clear_error(tmp_path, capsys):
    captions = write_shapes_folder(tmp_path, 5)
    (tmp_path / "images" / "000003.png").unlink()
    assert main(["data", "prepare", "captions", "--captions", str(captions), "--images",
                 str(tmp_path / "images"), "--out", str(tmp_path / "out")]) == 2
    error = capsys.readouterr().err.strip()
    assert error.count("\n") == 0
    assert "captions.txt line 11: 000003.png is not in" in error, error


STEP = 6  # frame i of a test clip is grey level STEP * i


def write_clips(folder: Path, lengths: list[int]) -> Path:
    """Clips whose frame i is grey level STEP * i, so a decoded frame tells its index."""
    (folder / "videos").mkdir(parents=True)
    rows = ["video_id,file,caption"]
    for number, length in enumerate(lengths):
        frames = np.stack([np.full((16, 16, 3), STEP * i, np.uint8) for i in range(length)])
        (folder / "videos" / f"clip{number}.mp4").write_bytes(encode_mp4(frames))
        rows.append(f"clip{number},videos/clip{number}.mp4,a clip of {length} frames")
    (folder / "captions.csv").write_text("\n".join(rows) + "\n")
    return folder / "captions.csv"


@pytest.mark.parametrize("stored", ["mp4", "frames"])
def test_clips_shorter_and_longer_than_the_frame_count_give_that_count(tmp_path, stored):
    lengths = {"clip0": 3, "clip1": 8, "clip2": 40}
    captions = write_clips(tmp_path / "raw", list(lengths.values()))
    out = tmp_path / "shards"
    extra = ["--frames", "12", "--frame-size", "16"] if stored == "frames" else []
    assert main(["data", "prepare", "video", "--captions", str(captions), "--videos",
                 str(tmp_path / "raw" / "videos"), "--out", str(out), "--val-fraction", "0",
                 "--test-fraction", "0", "--samples-per-shard", "3", *extra]) == 0
    datamodule = VideoCaptionDataModule(str(out), batch_size=3, num_workers=1, frames=8,
                                        image_size=16)
    batch = next(iter(datamodule._exact_pass_loader("train")))  # in shard order
    assert batch["frames"].shape == (3, 8, 3, 16, 16)
    for row, clip_id in enumerate(batch["ids"]):
        grey = to_pixels(batch["frames"][row, :, :, 8:9, 8:9])[:, 0, 0, 0] * 255  # (8,)
        decoded = [round(value / STEP) for value in grey.tolist()]
        expected = uniform_indices(lengths[clip_id], 8)
        if stored == "frames":  # 12 frames stored, then 8 of those sampled
            stored_indices = uniform_indices(lengths[clip_id], 12)
            expected = [stored_indices[i] for i in uniform_indices(12, 8)]
        assert decoded == expected, clip_id


def test_unreadable_clips_are_named_when_preparing_and_when_reading(tmp_path, capsys):
    captions = write_clips(tmp_path / "raw", [4, 4])
    (tmp_path / "raw" / "videos" / "clip1.mp4").write_bytes(b"not a video at all")
    args = ["data", "prepare", "video", "--captions", str(captions), "--videos",
            str(tmp_path / "raw" / "videos"), "--val-fraction", "0", "--test-fraction", "0"]
    assert main([*args, "--out", str(tmp_path / "a")]) == 2
    assert "1 unreadable clip(s): clip1.mp4" in capsys.readouterr().err

    out = tmp_path / "b"  # a shard written by hand with a broken clip
    (out).mkdir()
    assert main([*args, "--out", str(out), "--skip-unreadable"]) == 0
    with wds.TarWriter(str(out / "val-000000.tar")) as writer:
        writer.write({"__key__": "bad", "mp4": b"garbage",
                      "json": json.dumps({"captions": ["x"], "id": "clip9"}).encode()})
    datamodule = VideoCaptionDataModule(str(out), batch_size=1, num_workers=0)
    with pytest.raises(Exception, match="cannot decode clip clip9"):
        next(iter(datamodule.val_dataloader()))


def test_image_batches_teach_one_caption_and_keep_every_reference(tmp_path):
    captions = write_shapes_folder(tmp_path / "raw", 12)
    out = tmp_path / "shards"
    assert main(["data", "prepare", "captions", "--captions", str(captions), "--images",
                 str(tmp_path / "raw" / "images"), "--out", str(out), "--val-fraction", "0.5",
                 "--test-fraction", "0"]) == 0
    datamodule = CaptionDataModule(str(out), batch_size=4, num_workers=0, image_size=24)
    batch = next(iter(datamodule._exact_pass_loader("train")))  # words the vocabulary has
    assert batch["images"].shape == (4, 3, 24, 24)
    vocab = datamodule.vocab
    first = [vocab.tokens[i] for i in batch["tgt_out"][0] if i >= 0]
    assert first[-1] == EOS and vocab.tokens[batch["tgt_in"][0, 0]] == BOS
    assert first[:-1] == caption_words(batch["references"][0][0])
    assert len(batch["references"][0]) == 3

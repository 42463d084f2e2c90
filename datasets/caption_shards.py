"""`orchestrator data prepare captions|video`: captioned media -> shards of the media plus
`json {"captions": [...], "id": ...}`, a caption vocabulary and `dataset.json`.

Splits are by image or clip, never by caption, so no test image was seen in training
under another caption. Shards keep the raw captions: the metrics score against them.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from pathlib import Path
from typing import Protocol, TypeVar

import webdataset as wds
from tqdm import tqdm

from orchestrator.datasets.caption_sources import CaptionedItem
from orchestrator.datasets.caption_text import caption_words
from orchestrator.datasets.images import IMAGE_SUFFIXES
from orchestrator.datasets.manifest import DatasetManifest, SplitInfo, describe_files
from orchestrator.datasets.tokenizer import Tokenizer

VOCAB_FILE = "vocab.json"
# An item -> the media fields of its shard sample ({"jpg": bytes}, {"mp4": bytes}, ...).
MediaFields = Callable[[CaptionedItem], dict[str, bytes]]


class Identified(Protocol):
    id: str


Item = TypeVar("Item", bound=Identified)


def split_items(
    items: list[Item], val_fraction: float, test_fraction: float, seed: int = 0
) -> dict[str, list[Item]]:
    """A seeded random split of whole items (captioned images or clips, labelled clips): all
    of an item's captions or labels land in one split."""
    if not 0 <= val_fraction + test_fraction < 1:
        raise ValueError("val and test fractions must be >= 0 and leave some for training")
    shuffled = sorted(items, key=lambda item: item.id)
    random.Random(seed).shuffle(shuffled)
    n_val = round(len(shuffled) * val_fraction)
    n_test = round(len(shuffled) * test_fraction)
    return {
        "train": shuffled[n_val + n_test:],
        "val": shuffled[:n_val],
        "test": shuffled[n_val: n_val + n_test],
    }


def image_fields(item: CaptionedItem) -> dict[str, bytes]:
    """The image file's bytes as they are, under `jpg` or `png`."""
    key = IMAGE_SUFFIXES.get(item.path.suffix.lower())
    if key is None:
        raise ValueError(f"{item.path.name}: images must be jpg or png")
    return {key: item.path.read_bytes()}


def prepare_captions(
    splits: dict[str, list[CaptionedItem]],
    out_dir: Path,
    task: str = "image_captioning",
    media: MediaFields = image_fields,
    min_freq: int = 1,
    max_vocab: int | None = None,
    samples_per_shard: int = 1000,
    show_progress: bool = True,
    text: dict[str, str] | None = None,
) -> DatasetManifest:
    """Write `{split}-NNNNNN.tar` shards, `vocab.json` (words of the training captions) and
    `dataset.json` into `out_dir`."""
    if not splits.get("train"):
        raise ValueError("a captioning dataset needs a non-empty 'train' split")
    out_dir.mkdir(parents=True, exist_ok=True)
    train_captions = (" ".join(caption_words(c)) for item in splits["train"]
                      for c in item.captions)
    vocab = Tokenizer.build("word", train_captions, min_freq, max_vocab, sequence_specials=True)
    vocab.save(out_dir / VOCAB_FILE)
    infos = {name: _write_split(name, items, out_dir, media, samples_per_shard, show_progress)
             for name, items in splits.items()}
    files = [VOCAB_FILE] + [shard for info in infos.values() for shard in info.shards]
    manifest = DatasetManifest(
        task=task, vocab_file=VOCAB_FILE, splits=infos,
        **describe_files(out_dir, files),
        text={"tokenizer": "caption_words", **(text or {})}, location=str(out_dir),
    )
    (out_dir / "dataset.json").write_text(manifest.to_json())
    return manifest


def _write_split(
    split: str, items: list[CaptionedItem], out_dir: Path, media: MediaFields,
    samples_per_shard: int, show_progress: bool,
) -> SplitInfo:
    for stale in out_dir.glob(f"{split}-*.tar"):
        stale.unlink()
    pattern = str(out_dir / f"{split}-%06d.tar")
    with wds.ShardWriter(pattern, maxcount=samples_per_shard, verbose=0) as writer:
        progress = tqdm(items, desc=f"{split} shards", unit="item", disable=not show_progress)
        for number, item in enumerate(progress):
            meta = {"captions": item.captions, "id": item.id}
            writer.write({"__key__": f"{split}-{number:08d}", **media(item),
                          "json": json.dumps(meta).encode("utf-8")})
    shards = sorted(path.name for path in out_dir.glob(f"{split}-*.tar"))
    tokens = sum(len(caption_words(c)) for item in items for c in item.captions)
    return SplitInfo(samples=len(items), tokens=tokens, shards=shards)

"""The built-in sample datasets (config `data.sample`), generated on first use.

Small synthetic tasks a model can learn in a minute on a laptop, written through the same
`data prepare` code as real data, so the first run exercises the real pipeline; and, like
`data prepare`, all-or-nothing (`dataset_folder`): a generation stopped halfway leaves no
folder that a later run could take for a whole dataset.
"""

from __future__ import annotations

import functools
import tempfile
from collections.abc import Callable
from pathlib import Path

from orchestrator.datasets.caption_shards import prepare_captions, split_items
from orchestrator.datasets.caption_sources import read_flickr_captions, read_video_csv
from orchestrator.datasets.classification_shards import prepare_classification
from orchestrator.datasets.dataset_folder import build_dataset
from orchestrator.datasets.frame_label_shards import prepare_frame_labels, read_frame_labels
from orchestrator.datasets.manifest import DatasetManifest
from orchestrator.datasets.synthetic import (
    date_pairs,
    first_word_examples,
    grammar_text,
    markov_text,
)
from orchestrator.datasets.synthetic_captions import (
    write_moving_shapes_folder,
    write_shapes_folder,
)
from orchestrator.datasets.synthetic_frames import write_curtain_shapes_folder
from orchestrator.datasets.text_shards import prepare_text, split_by_fraction
from orchestrator.datasets.translation_shards import prepare_translation
from orchestrator.datasets.video_shards import mp4_fields

SAMPLE_SIZE_CHARS = 300_000


Writer = Callable[[Path, int], DatasetManifest]


def _all_or_nothing(write: Writer) -> Callable[[Path, int], None]:
    """`write` run into a temporary folder beside `path`, moved there only when complete.
    The caller makes sure `path` is absent or empty: a sample never replaces anything."""

    def generate(path: Path, seed: int) -> None:
        build_dataset(path, lambda folder: write(folder, seed))

    return generate


def _write_text_sample(corpus: Callable[..., str]) -> Writer:
    def write(path: Path, seed: int) -> DatasetManifest:
        text = corpus(SAMPLE_SIZE_CHARS, seed=seed)
        return prepare_text(split_by_fraction(text, 0.05, 0.05), path, "char", 512, 32)

    return write


def _write_dates_sample(path: Path, seed: int, subword_joint: bool = False) -> DatasetManifest:
    pairs = date_pairs(5000, seed=seed)
    splits = {"train": pairs[:4400], "val": pairs[4400:4700], "test": pairs[4700:]}
    if subword_joint:  # one 400-piece BPE vocabulary for both sides (byte pieces included)
        return prepare_translation(splits, path, "en", "en", samples_per_shard=1000,
                                   subword="bpe", subword_vocab_size=400, subword_joint=True)
    return prepare_translation(splits, path, "en", "en", min_freq=1, samples_per_shard=1000)


def _write_first_word_sample(path: Path, seed: int) -> DatasetManifest:
    rows = first_word_examples(3000, seed=seed)
    splits = {"train": rows[:2400], "val": rows[2400:2700], "test": rows[2700:]}
    return prepare_classification(splits, path, samples_per_shard=500)


SHAPES_IMAGES = 2400  # 1/12 each for val and test
MOVING_SHAPES_CLIPS = 1200


def _write_shapes_sample(path: Path, seed: int) -> DatasetManifest:
    with tempfile.TemporaryDirectory() as folder:
        raw = Path(folder)
        items = read_flickr_captions(write_shapes_folder(raw, SHAPES_IMAGES, seed), raw / "images")
        return prepare_captions(split_items(items, 1 / 12, 1 / 12, seed), path,
                                samples_per_shard=500)


def _write_moving_shapes_sample(path: Path, seed: int) -> DatasetManifest:
    with tempfile.TemporaryDirectory() as folder:
        raw = Path(folder)
        captions = write_moving_shapes_folder(raw, MOVING_SHAPES_CLIPS, seed)
        items = read_video_csv(captions, raw / "videos")
        return prepare_captions(split_items(items, 1 / 12, 1 / 12, seed), path,
                                "video_captioning", mp4_fields, samples_per_shard=250,
                                text={"media": "mp4"})


CURTAIN_SHAPES_CLIPS = 960


def _write_curtain_shapes_sample(path: Path, seed: int) -> DatasetManifest:
    with tempfile.TemporaryDirectory() as folder:
        clips = read_frame_labels(write_curtain_shapes_folder(Path(folder), CURTAIN_SHAPES_CLIPS,
                                                              seed))
        return prepare_frame_labels(split_items(clips, 1 / 12, 1 / 12, seed), path,
                                    samples_per_shard=240)


# The built-in sample datasets (config `data.sample`): name -> generate(path, seed), which
# writes the whole dataset at `path` (absent or empty) or nothing.
SAMPLE_DATASETS: dict[str, Callable[[Path, int], None]] = {
    name: _all_or_nothing(write) for name, write in {
        "grammar": _write_text_sample(grammar_text),
        "markov": _write_text_sample(markov_text),
        "first_word": _write_first_word_sample,
        "dates": _write_dates_sample,
        "dates_bpe": functools.partial(_write_dates_sample, subword_joint=True),
        "shapes": _write_shapes_sample,
        "moving_shapes": _write_moving_shapes_sample,
        "curtain_shapes": _write_curtain_shapes_sample,
    }.items()
}

"""`orchestrator data prepare text`: text -> WebDataset tar shards of `txt` samples.

Each sample is a contiguous segment of about `sample_tokens` tokens: long enough that a
stateful model carries its hidden state across many BPTT windows, short enough to shuffle.
Concatenating a split's samples in shard order gives back the split's text exactly.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import webdataset as wds
from tqdm import tqdm

from orchestrator.datasets.manifest import DatasetManifest, SplitInfo, describe_files
from orchestrator.datasets.tokenizer import Level, Tokenizer, split_tokens

VOCAB_FILE = "vocab.json"


def split_by_fraction(text: str, val_fraction: float, test_fraction: float) -> dict[str, str]:
    """Contiguous train/val/test by whole lines: the first part trains, the last tests.
    A text of too few lines to give each asked-for split one (the one-line Markov sample)
    is cut by characters instead, so no split comes out empty."""
    units: list[str] = text.splitlines(keepends=True)
    if any(0 < fraction and int(len(units) * fraction) == 0
           for fraction in (val_fraction, test_fraction)):
        units = list(text)
    n_val, n_test = int(len(units) * val_fraction), int(len(units) * test_fraction)
    n_train = len(units) - n_val - n_test
    return {
        "train": "".join(units[:n_train]),
        "val": "".join(units[n_train : n_train + n_val]),
        "test": "".join(units[n_train + n_val :]),
    }


def prepare_text(
    splits: dict[str, str],
    out_dir: Path,
    level: Level = "char",
    sample_tokens: int = 1024,
    samples_per_shard: int = 64,
    min_freq: int = 1,
    max_vocab: int | None = None,
    show_progress: bool = True,
) -> DatasetManifest:
    """Write `{split}-NNNNNN.tar` shards, `vocab.json` and `dataset.json` into `out_dir`."""
    if "train" not in splits:
        raise ValueError("a text dataset needs a 'train' split to build its vocabulary")
    out_dir.mkdir(parents=True, exist_ok=True)
    tokenizer = Tokenizer.build(level, [splits["train"]], min_freq, max_vocab)
    tokenizer.save(out_dir / VOCAB_FILE)
    infos = {
        name: _write_split(name, text, out_dir, level, sample_tokens, samples_per_shard,
                           show_progress)
        for name, text in splits.items()
    }
    files = [VOCAB_FILE] + [shard for info in infos.values() for shard in info.shards]
    manifest = DatasetManifest(
        task="language_model",
        vocab_file=VOCAB_FILE,
        splits=infos,
        **describe_files(out_dir, files),
        location=str(out_dir),
    )
    (out_dir / "dataset.json").write_text(manifest.to_json())
    return manifest


def _write_split(
    split: str, text: str, out_dir: Path, level: Level, sample_tokens: int,
    samples_per_shard: int, show_progress: bool,
) -> SplitInfo:
    for stale in out_dir.glob(f"{split}-*.tar"):
        stale.unlink()
    pattern = str(out_dir / f"{split}-%06d.tar")
    samples = tokens = 0
    progress = tqdm(total=len(text), desc=f"{split} shards", unit="char", disable=not show_progress)
    with wds.ShardWriter(pattern, maxcount=samples_per_shard, verbose=0) as writer:
        for segment in segments(text, level, sample_tokens):
            writer.write({"__key__": f"{split}-{samples:08d}", "txt": segment})
            samples += 1
            tokens += len(split_tokens(level, segment))
            progress.update(len(segment))
    progress.close()
    shards = sorted(path.name for path in out_dir.glob(f"{split}-*.tar"))
    return SplitInfo(samples=samples, tokens=tokens, shards=shards)


def segments(text: str, level: Level, sample_tokens: int) -> Iterator[str]:
    """Contiguous pieces of `text`: fixed-size for characters, whole lines for words."""
    if level == "char":
        for start in range(0, len(text), sample_tokens):
            yield text[start : start + sample_tokens]
        return
    piece: list[str] = []
    count = 0
    for line in text.splitlines(keepends=True):
        piece.append(line)
        count += len(line.split()) + 1
        if count >= sample_tokens:
            yield "".join(piece)
            piece, count = [], 0
    if piece:
        yield "".join(piece)

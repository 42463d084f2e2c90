"""`orchestrator data prepare translation`: parallel text -> shards of `src.txt`/`tgt.txt`.

Shards hold the raw sentences (BLEU needs the untouched references); the vocabularies are
built from the Moses-tokenised training side, with a minimum frequency and a maximum size.
"""

from __future__ import annotations

from pathlib import Path

import webdataset as wds
from tqdm import tqdm

from orchestrator.datasets.manifest import DatasetManifest, SplitInfo, sha256_of
from orchestrator.datasets.moses_text import MosesText
from orchestrator.datasets.tokenizer import Tokenizer

Pair = tuple[str, str]  # (source sentence, target sentence)
SOURCE_VOCAB, TARGET_VOCAB = "src_vocab.json", "tgt_vocab.json"


def read_parallel(source: Path, target: Path) -> list[Pair]:
    """Line-aligned sentence pairs; files with different line counts are refused."""
    src_lines = source.read_text(encoding="utf-8").splitlines()
    tgt_lines = target.read_text(encoding="utf-8").splitlines()
    if len(src_lines) != len(tgt_lines):
        raise ValueError(
            f"{source} has {len(src_lines)} lines but {target} has {len(tgt_lines)}; "
            "parallel files must be aligned line by line"
        )
    return list(zip(src_lines, tgt_lines, strict=True))


def prepare_translation(
    splits: dict[str, list[Pair]],
    out_dir: Path,
    source_lang: str,
    target_lang: str,
    lowercase: bool = False,
    min_freq: int = 2,
    max_vocab: int | None = None,
    samples_per_shard: int = 5000,
    show_progress: bool = True,
) -> DatasetManifest:
    if "train" not in splits:
        raise ValueError("a translation dataset needs a 'train' split")
    out_dir.mkdir(parents=True, exist_ok=True)
    source, target = MosesText(source_lang, lowercase), MosesText(target_lang, lowercase)
    train = splits["train"]
    progress = {"desc": "tokenising train", "unit": "pair", "disable": not show_progress}
    pairs = [(source.tokenize(s), target.tokenize(t)) for s, t in tqdm(train, **progress)]
    for name, side in ((SOURCE_VOCAB, 0), (TARGET_VOCAB, 1)):
        vocab = Tokenizer.build("word", [pair[side] for pair in pairs], min_freq, max_vocab,
                                sequence_specials=True)
        vocab.save(out_dir / name)
    infos = {
        name: _write_split(name, rows, out_dir, samples_per_shard, show_progress)
        for name, rows in splits.items()
    }
    files = [SOURCE_VOCAB, TARGET_VOCAB] + [s for info in infos.values() for s in info.shards]
    manifest = DatasetManifest(
        task="translation", vocab_file=SOURCE_VOCAB, target_vocab_file=TARGET_VOCAB,
        splits=infos, checksums={name: sha256_of(out_dir / name) for name in files},
        text={"src": source_lang, "tgt": target_lang, "tokenizer": "moses",
              "lowercase": str(lowercase).lower()},
        location=str(out_dir),
    )
    (out_dir / "dataset.json").write_text(manifest.to_json())
    return manifest


def _write_split(
    split: str, rows: list[Pair], out_dir: Path, samples_per_shard: int, show_progress: bool
) -> SplitInfo:
    for stale in out_dir.glob(f"{split}-*.tar"):
        stale.unlink()
    pattern = str(out_dir / f"{split}-%06d.tar")
    with wds.ShardWriter(pattern, maxcount=samples_per_shard, verbose=0) as writer:
        for number, (src, tgt) in enumerate(
            tqdm(rows, desc=f"{split} shards", unit="pair", disable=not show_progress)
        ):
            writer.write({"__key__": f"{split}-{number:08d}", "src.txt": src, "tgt.txt": tgt})
    shards = sorted(path.name for path in out_dir.glob(f"{split}-*.tar"))
    tokens = sum(len(tgt.split()) for _, tgt in rows)
    return SplitInfo(samples=len(rows), tokens=tokens, shards=shards)

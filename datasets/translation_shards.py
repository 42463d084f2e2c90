"""`orchestrator data prepare translation`: parallel text -> shards of `src.txt`/`tgt.txt`.

Shards hold the raw sentences (BLEU needs the untouched references); the vocabularies are
built from the Moses-tokenised training side, with a minimum frequency and a maximum size,
or are the pieces of sentencepiece models trained on it.
"""

from __future__ import annotations

from pathlib import Path

import webdataset as wds
from tqdm import tqdm

from orchestrator.datasets.manifest import DatasetManifest, SplitInfo, describe_files
from orchestrator.datasets.sentencepiece_text import SentencePieceText, train_sentencepiece
from orchestrator.datasets.text_processing import text_processors
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
    subword: str | None = None,
    subword_vocab_size: int = 8000,
    subword_joint: bool = False,
) -> DatasetManifest:
    """Shards, both vocabularies and `dataset.json`. Words are Moses tokens (vocabulary by
    `min_freq`/`max_vocab`), or with `subword` ("bpe" or "unigram") sentencepiece pieces
    of a model trained per side on the training text, or with `subword_joint` one model
    trained on both sides (one vocabulary, which `model.share_embeddings` needs)."""
    if "train" not in splits:
        raise ValueError("a translation dataset needs a 'train' split")
    out_dir.mkdir(parents=True, exist_ok=True)
    text = {"src": source_lang, "tgt": target_lang, "lowercase": str(lowercase).lower(),
            "tokenizer": "moses" if subword is None else "sentencepiece"}
    files = [SOURCE_VOCAB, TARGET_VOCAB]
    if subword is None:
        _write_word_vocabularies(splits["train"], out_dir, text, min_freq, max_vocab,
                                 show_progress)
    else:
        files += _write_subword_models(splits["train"], out_dir, text, subword,
                                       subword_vocab_size, subword_joint)
    infos = {
        name: _write_split(name, rows, out_dir, samples_per_shard, show_progress)
        for name, rows in splits.items()
    }
    files += [s for info in infos.values() for s in info.shards]
    manifest = DatasetManifest(
        task="translation", vocab_file=SOURCE_VOCAB, target_vocab_file=TARGET_VOCAB,
        splits=infos, **describe_files(out_dir, files),
        text=text, location=str(out_dir),
    )
    (out_dir / "dataset.json").write_text(manifest.to_json())
    return manifest


def _write_word_vocabularies(
    train: list[Pair], out_dir: Path, text: dict[str, str], min_freq: int,
    max_vocab: int | None, show_progress: bool,
) -> None:
    source, target = text_processors(text, {})
    progress = {"desc": "tokenising train", "unit": "pair", "disable": not show_progress}
    pairs = [(source.tokenize(s), target.tokenize(t)) for s, t in tqdm(train, **progress)]
    for name, side in ((SOURCE_VOCAB, 0), (TARGET_VOCAB, 1)):
        vocab = Tokenizer.build("word", [pair[side] for pair in pairs], min_freq, max_vocab,
                                sequence_specials=True)
        vocab.save(out_dir / name)


def _write_subword_models(
    train: list[Pair], out_dir: Path, text: dict[str, str], model_type: str, vocab_size: int,
    joint: bool,
) -> list[str]:
    """Train one sentencepiece model per side, or one on both sides (`joint`, written once
    and named by both); a side's vocabulary is its model's pieces."""
    lowercase = text["lowercase"] == "true"

    def sentences(columns: tuple[int, ...]) -> list[str]:
        return [pair[c].lower() if lowercase else pair[c] for pair in train for c in columns]

    columns = {"joint": (0, 1)} if joint else {"src": (0,), "tgt": (1,)}
    models = {name: train_sentencepiece(sentences(of), model_type, vocab_size)
              for name, of in columns.items()}
    for name, model in models.items():
        (out_dir / f"{name}.spm.model").write_bytes(model)
    for side, vocab_name in (("src", SOURCE_VOCAB), ("tgt", TARGET_VOCAB)):
        name = "joint" if joint else side
        text[f"{side}_model"] = f"{name}.spm.model"
        Tokenizer("word", SentencePieceText(models[name]).pieces()).save(out_dir / vocab_name)
    return [f"{name}.spm.model" for name in models]


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

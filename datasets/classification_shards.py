"""`orchestrator data prepare classification`: labelled sentences -> shards of `txt` + `cls`.

Reads the SST `stsa.*` layout (`label<TAB or space>sentence` per line) and SST parse trees
(`(label (..) ..)`, the root label is the sentence's). The label names are recorded in
`dataset.json`, in class-index order.
"""

from __future__ import annotations

import re
from pathlib import Path

import webdataset as wds
from tqdm import tqdm

from orchestrator.datasets.manifest import DatasetManifest, SplitInfo, describe_files
from orchestrator.datasets.text_shards import VOCAB_FILE
from orchestrator.datasets.tokenizer import Tokenizer, split_tokens

Example = tuple[str, str]  # (label name, sentence)

SST_FINE_LABELS = ["very negative", "negative", "neutral", "positive", "very positive"]
SST_BINARY_LABELS = ["negative", "positive"]
_TREE_TOKEN = re.compile(r"[()]|[^()\s]+")
_TREE_ROOT = re.compile(r"^\s*\((\d+)\s")


def read_labelled_lines(path: Path) -> list[Example]:
    """`label sentence` per line (tab or space after the label), blank lines skipped."""
    examples = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        label, _, sentence = line.strip().replace("\t", " ").partition(" ")
        if not sentence.strip():
            raise ValueError(f"{path}:{number}: expected `label sentence`, got {line!r}")
        examples.append((label, sentence.strip()))
    return examples


def read_sst_trees(path: Path, binary: bool, phrases: bool = False) -> list[Example]:
    """The root label and leaves of each tree, or with `phrases` every labelled node's.

    SST labels every phrase of every tree; the strong SST baselines train on all of them
    (each distinct phrase once, the sentences included) and evaluate on sentences only.
    Binary drops neutral (2) and folds 0-1 and 3-4.
    """
    examples = []
    seen: set[str] = set()
    names = SST_BINARY_LABELS if binary else SST_FINE_LABELS
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        if _TREE_ROOT.match(line) is None or not _balanced(line):
            raise ValueError(f"{path}:{number}: not an SST tree (a label in parentheses with "
                             f"balanced brackets): {line[:60]!r}")
        try:
            nodes = _labelled_phrases(line)
        except ValueError as exc:
            raise ValueError(f"{path}:{number}: {exc}") from None
        for label, phrase in nodes if phrases else nodes[-1:]:  # the root closes last
            if phrase in seen or (binary and label == 2):
                continue
            if phrases:
                seen.add(phrase)
            examples.append((names[int(label > 2)] if binary else names[label], phrase))
    return examples


def _labelled_phrases(tree: str) -> list[tuple[int, str]]:
    """(label, words) of every node of one tree, in the order the nodes close."""
    words: list[str] = []
    open_nodes: list[tuple[int, int]] = []  # (label, index of the node's first word)
    nodes = []
    tokens = _TREE_TOKEN.findall(tree)
    for position, token in enumerate(tokens):
        if token == "(":
            label = tokens[position + 1]
            if label not in {"0", "1", "2", "3", "4"}:
                raise ValueError(f"node label {label!r} is not one of 0-4")
            open_nodes.append((int(label), len(words)))
        elif token == ")":
            label, first = open_nodes.pop()
            nodes.append((label, " ".join(words[first:])))
        elif tokens[position - 1] != "(":  # not a label: a leaf word
            words.append(token)
    return nodes


def _balanced(line: str) -> bool:
    """Every bracket closed, none closed early, and nothing after the root's."""
    depth = 0
    for position, char in enumerate(line.strip()):
        depth += {"(": 1, ")": -1}.get(char, 0)
        if depth < 0 or (depth == 0 and position < len(line.strip()) - 1):
            return False
    return depth == 0


def prepare_classification(
    splits: dict[str, list[Example]],
    out_dir: Path,
    labels: list[str] | None = None,
    lowercase: bool = True,
    min_freq: int = 1,
    max_vocab: int | None = None,
    samples_per_shard: int = 1000,
    show_progress: bool = True,
) -> DatasetManifest:
    """Write `{split}-NNNNNN.tar` shards of `txt`/`cls`, `vocab.json` and `dataset.json`.

    `labels` fixes the class order; by default it is the sorted label names seen.
    """
    if "train" not in splits:
        raise ValueError("a classification dataset needs a 'train' split")
    if lowercase:
        splits = {name: [(y, x.lower()) for y, x in rows] for name, rows in splits.items()}
    labels = labels or sorted({label for rows in splits.values() for label, _ in rows})
    index = {label: i for i, label in enumerate(labels)}
    out_dir.mkdir(parents=True, exist_ok=True)
    tokenizer = Tokenizer.build("word", [x for _, x in splits["train"]], min_freq, max_vocab)
    tokenizer.save(out_dir / VOCAB_FILE)
    infos = {}
    for name, rows in splits.items():
        unknown = sorted({label for label, _ in rows} - set(index))
        if unknown:
            raise ValueError(f"{name} has labels {unknown} outside {labels}")
        infos[name] = _write_split(name, rows, index, out_dir, samples_per_shard, show_progress)
    files = [VOCAB_FILE] + [shard for info in infos.values() for shard in info.shards]
    manifest = DatasetManifest(
        task="sentiment", vocab_file=VOCAB_FILE, splits=infos,
        **describe_files(out_dir, files),
        labels=labels, location=str(out_dir),
    )
    (out_dir / "dataset.json").write_text(manifest.to_json())
    return manifest


def _write_split(
    split: str, rows: list[Example], index: dict[str, int], out_dir: Path,
    samples_per_shard: int, show_progress: bool,
) -> SplitInfo:
    for stale in out_dir.glob(f"{split}-*.tar"):
        stale.unlink()
    tokens = 0
    pattern = str(out_dir / f"{split}-%06d.tar")
    with wds.ShardWriter(pattern, maxcount=samples_per_shard, verbose=0) as writer:
        for number, (label, sentence) in enumerate(
            tqdm(rows, desc=f"{split} shards", unit="sentence", disable=not show_progress)
        ):
            writer.write({"__key__": f"{split}-{number:08d}", "txt": sentence,
                          "cls": index[label]})
            tokens += len(split_tokens("word", sentence))
    shards = sorted(path.name for path in out_dir.glob(f"{split}-*.tar"))
    return SplitInfo(samples=len(rows), tokens=tokens, shards=shards)

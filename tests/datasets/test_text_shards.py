"""`data prepare text` -> real tar shards -> the streaming reader gives the text back."""

from __future__ import annotations

import io
import itertools
import os
import subprocess
import sys
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from torch.utils.data import IterableDataset

from orchestrator.cli import main
from orchestrator.datasets import streaming
from orchestrator.datasets.batches import IGNORE_INDEX
from orchestrator.datasets.language_model_data import LanguageModelDataModule
from orchestrator.datasets.manifest import (
    DatasetError,
    check_local_shards,
    load_manifest,
    verify_checksums,
)
from orchestrator.datasets.synthetic import grammar_text


def streamed_tokens(path: Path, split: str, num_workers: int = 0) -> list[int]:
    """Every token of a split, rebuilt from the reader's BPTT windows (one row)."""
    datamodule = LanguageModelDataModule(str(path), batch_size=1, bptt=7, num_workers=num_workers)
    loader = datamodule.val_dataloader() if split == "val" else datamodule.test_dataloader()
    tokens: list[int] = []
    for batch in loader:
        if batch["reset"][0]:
            tokens.append(int(batch["inputs"][0, 0]))
        targets = batch["targets"][0]
        tokens.extend(targets[targets != IGNORE_INDEX].tolist())
    return tokens


def text_shards(tmp_path: Path, text: str, level: str, *split_fractions: str) -> Path:
    """`data prepare text` of `text` into 5-sample shards of 97 characters or 13 words."""
    (tmp_path / "corpus.txt").write_text(text)
    out = tmp_path / "shards"
    assert main([
        "data", "prepare", "text", "--input", str(tmp_path / "corpus.txt"), "--out", str(out),
        "--level", level, "--sample-tokens", "97" if level == "char" else "13",
        "--samples-per-shard", "5", *split_fractions,
    ]) == 0
    return out


@pytest.mark.parametrize("level", ["char", "word"])
def test_round_trip_text_to_shards_to_streamed_tokens(level, tmp_path):
    text = grammar_text(6_000, seed=4)
    out = text_shards(tmp_path, text, level, "--val-fraction", "0.3", "--test-fraction", "0.2")
    manifest = load_manifest(str(out))
    tokenizer = LanguageModelDataModule(str(out)).tokenizer
    lines = text.splitlines(keepends=True)
    n_test = int(len(lines) * 0.2)
    test_text = "".join(lines[len(lines) - n_test :])
    assert len(manifest.splits["test"].shards) > 1
    assert streamed_tokens(out, "test") == tokenizer.encode(test_text)
    assert manifest.splits["test"].tokens == len(tokenizer.encode(test_text))
    assert tokenizer.decode(tokenizer.encode(test_text)) == test_text
    assert verify_checksums(manifest) == []


def test_two_loader_workers_read_every_token_once(tmp_path):
    out = text_shards(tmp_path, grammar_text(3_000, seed=5), "char", "--test-fraction", "0.3")
    manifest = load_manifest(str(out))
    assert len(manifest.splits["test"].shards) >= 2
    single = streamed_tokens(out, "test", num_workers=0)
    assert len(single) == manifest.splits["test"].tokens
    assert sorted(streamed_tokens(out, "test", num_workers=2)) == sorted(single)


class ProcessIds(IterableDataset):
    """One sample: the reading process's parent and its own id."""

    def __iter__(self) -> Iterator[tuple[int, int]]:
        yield os.getppid(), os.getpid()


def test_loader_workers_are_not_forked_from_the_training_process():
    """A training process has threads (Ray's, MLflow's); a loader worker forked from it
    while one of them held a lock froze at start, and its rank's DDP peers waited forever.
    Loader workers come from a fork server instead, for training and evaluation."""
    loaders = [streaming.training_loader(ProcessIds(), num_workers=1, batches=1),
               streaming.evaluation_loader(ProcessIds(), num_workers=1, num_shards=1)]
    for loader in loaders:
        [(parent, worker)] = list(loader)
        assert parent != os.getpid() and worker != os.getpid()
        assert [tuple(ids) for ids in loader] == [(parent, worker)]  # kept for the next epoch


class Counting(IterableDataset):
    """0, 1, 2, ...: each sample says how far along the stream it is."""

    def __iter__(self) -> Iterator[int]:
        yield from itertools.count()


def test_each_training_epoch_continues_the_stream_where_the_last_one_stopped():
    """A loader that started its workers' pipeline over each epoch threw away what they
    had prefetched past the epoch's end, and the model waited for the shuffle and bucket
    buffers to fill again before the epoch's first batch."""
    loader = streaming.training_loader(Counting(), num_workers=1, batches=3)
    assert len(loader) == 3
    epochs = [[int(sample) for sample in loader] for _ in range(3)]
    assert epochs == [[0, 1, 2], [3, 4, 5], [6, 7, 8]]


READER_MODULE = """
import os
from torch.utils.data import IterableDataset
IMPORTED_IN = os.getpid()

class Where(IterableDataset):
    def __iter__(self):
        yield os.getpid(), IMPORTED_IN
"""

MAIN_SCRIPT = """
from orchestrator.datasets import streaming
from reader import Where

if __name__ == "__main__":
    [(worker, imported_in)] = streaming.training_loader(
        Where(), num_workers=1, batches=1, reader_module="reader")
    print("imported by the fork server" if worker != imported_in else "imported by the worker")
"""


def test_loader_workers_inherit_the_reader_module_from_the_fork_server(tmp_path):
    """Each loader worker would otherwise import the module of the pipeline's stages itself
    to unpickle them (a DataModule's imports Lightning: seconds per worker). Run in a fresh
    interpreter, since a process keeps its first fork server and that one's imports."""
    (tmp_path / "reader.py").write_text(READER_MODULE)
    (tmp_path / "main.py").write_text(MAIN_SCRIPT)
    result = subprocess.run(
        [sys.executable, "main.py"], cwd=tmp_path, capture_output=True, text=True,
        env={**os.environ, "PYTHONPATH": str(tmp_path)}, timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "imported by the fork server"


def test_each_training_pass_reads_every_sample_once(markov_dataset):
    """Training streams never end, but each pass of one stream reads its shards without
    replacement: 3 passes over 40 samples hold each sample exactly 3 times."""
    manifest = load_manifest(str(markov_dataset))
    stream = iter(streaming.training_source(manifest.shard_urls("train")))
    keys = [next(stream)["__key__"] for _ in range(3 * manifest.splits["train"].samples)]
    for start in range(0, len(keys), 40):
        assert len(set(keys[start : start + 40])) == 40


def test_a_seeded_run_reads_its_training_samples_in_the_same_order(markov_dataset):
    """The shuffle buffer and the loader workers draw from the run's seed, not the clock:
    the same seed gives the same batches, another seed other batches."""

    def first_epoch(seed: int) -> list[list[int]]:
        torch.manual_seed(seed)  # what seed_everything sets; loader workers derive theirs
        datamodule = LanguageModelDataModule(str(markov_dataset), batch_size=2, bptt=50,
                                             num_workers=1, batches_per_epoch=12)
        return [batch["inputs"][:, 0].tolist() for batch in datamodule.train_dataloader()]

    assert first_epoch(3) == first_epoch(3)
    assert first_epoch(3) != first_epoch(4)


def test_ranks_and_loader_workers_walk_disjoint_shares_of_the_shards():
    shards = [{"url": f"train-{i}.tar"} for i in range(5)]

    def share(rank: int, world_size: int) -> list[str]:
        return [shard["url"] for shard in streaming.own_share(shards, rank, world_size)]

    shares = [share(rank, 2) for rank in range(2)]
    assert sorted(shares[0] + shares[1]) == sorted(shard["url"] for shard in shards)
    # more streams than shards: every stream walks them all (none idles, none runs dry)
    assert all(sorted(share(rank, 8)) == sorted(s["url"] for s in shards) for rank in range(8))


def test_a_stream_walks_its_share_pass_after_pass_in_new_orders():
    shards = [{"url": f"train-{i}.tar"} for i in range(10)]
    passes = streaming.own_shard_passes(iter(shards), rank=1, world_size=2)
    walked = [[shard["url"] for shard in itertools.islice(passes, 5)] for _ in range(4)]
    assert all(sorted(one) == [f"train-{i}.tar" for i in (1, 3, 5, 7, 9)] for one in walked)
    assert len({tuple(one) for one in walked}) > 1


def test_two_fits_in_one_process_with_one_seed_walk_the_same_orders():
    """In the training process (`data.num_workers=0`), as a notebook runs fit after fit."""
    shards = [{"url": f"train-{i}.tar"} for i in range(10)]

    def walk() -> list[str]:
        torch.manual_seed(3)
        passes = streaming.own_shard_passes(iter(shards), rank=0, world_size=1)
        return [shard["url"] for shard in itertools.islice(passes, 30)]

    assert walk() == walk()


def test_rows_run_on_from_one_pass_over_the_shards_into_the_next(markov_dataset):
    """One stream for the whole fit, across passes too. A pipeline repeated as a whole
    (webdataset's `.repeat()`) restarted its every stage at each pass: the rows that ran
    out first were padded until the last one ended, and then every row started over."""
    datamodule = LanguageModelDataModule(str(markov_dataset), batch_size=3, bptt=50,
                                         num_workers=0, batches_per_epoch=50)
    loader = datamodule.train_dataloader()
    # 4 epochs of 50 windows x 3 rows x 50 tokens: one and a half passes of 20,000 tokens
    windows = [batch for _ in range(4) for batch in loader]
    assert all((window["targets"] != IGNORE_INDEX).any(dim=1).all() for window in windows)


def test_manifest_records_counts_and_odd_uneven_train_shards(markov_dataset):
    manifest = load_manifest(str(markov_dataset))
    train = manifest.splits["train"]
    assert (train.samples, train.tokens, len(train.shards)) == (40, 20_000, 3)
    assert manifest.task == "language_model"
    assert set(manifest.checksums) == {"vocab.json", *train.shards,
                                       *manifest.splits["val"].shards,
                                       *manifest.splits["test"].shards}


def test_missing_shard_is_named(markov_dataset, tmp_path):
    copy = tmp_path / "copy"
    copy.mkdir()
    for item in markov_dataset.iterdir():
        if item.name != "train-000001.tar":
            (copy / item.name).write_bytes(item.read_bytes())
    with pytest.raises(DatasetError, match="missing train-000001.tar"):
        check_local_shards(load_manifest(str(copy)))


def test_corrupt_shard_fails_with_a_dataset_error(markov_dataset, tmp_path):
    copy = tmp_path / "copy"
    copy.mkdir()
    for item in markov_dataset.iterdir():
        (copy / item.name).write_bytes(item.read_bytes())
    broken = copy / "val-000000.tar"
    broken.write_bytes(broken.read_bytes()[:700] + b"\x00garbage" * 50)
    assert verify_checksums(load_manifest(str(copy))) == ["val-000000.tar"]
    assert main(["data", "verify", str(copy)]) == 2
    assert main(["data", "verify", str(markov_dataset)]) == 0
    with pytest.raises(DatasetError, match="cannot read shard"):
        streamed_tokens(copy, "val")


def test_shards_are_plain_tars_with_txt_samples(markov_dataset):
    with tarfile.open(markov_dataset / "train-000002.tar") as tar:
        names = tar.getnames()
        first = tar.extractfile(names[0])
        assert first is not None
        body = io.TextIOWrapper(first, encoding="utf-8").read()
    assert len(names) == 10
    assert all(name.endswith(".txt") for name in names)
    assert len(body) == 500

"""The language-model DataModule: WebDataset shards of `txt` -> BPTT windows per rank.

Training reads resampled shards (each rank and loader worker draws shards at random,
forever) and cuts the epoch at the same number of batches on every rank, so DDP never
waits on a rank that ran out of data. Validation and test read each shard exactly once:
rank r takes every world_size-th shard, so the whole-split perplexity is exact.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from functools import partial
from typing import Any

import pytorch_lightning as pl
import torch
import torch.distributed as dist
import webdataset as wds
from torch.utils.data import DataLoader, IterableDataset

from orchestrator.datasets.bptt_windows import bptt_windows
from orchestrator.datasets.manifest import DatasetError, DatasetManifest, load_manifest
from orchestrator.datasets.tokenizer import Tokenizer


class LanguageModelDataModule(pl.LightningDataModule):
    def __init__(
        self,
        path: str,
        batch_size: int = 32,
        bptt: int = 64,
        num_workers: int = 1,
        shuffle_buffer: int = 64,
        batches_per_epoch: int | None = None,
    ):
        super().__init__()
        self.path = path
        self.batch_size = batch_size
        self.bptt = bptt
        self.num_workers = num_workers
        self.shuffle_buffer = shuffle_buffer
        self.batches_per_epoch = batches_per_epoch
        self.manifest: DatasetManifest = load_manifest(path)
        self.tokenizer = Tokenizer.from_json(self.manifest.read_file(self.manifest.vocab_file))

    def train_batches_per_epoch(self, world_size: int) -> int:
        """Batches each rank runs per epoch: one pass over the train tokens in total."""
        if self.batches_per_epoch is not None:
            return self.batches_per_epoch
        tokens = self.manifest.splits["train"].tokens
        return max(1, math.ceil(tokens / (self.batch_size * self.bptt * world_size)))

    def train_dataloader(self) -> DataLoader:
        _, world_size = _rank_and_world()
        pipeline = (
            wds.WebDataset(
                self.manifest.shard_urls("train"),
                resampled=True,
                shardshuffle=False,
                nodesplitter=None,
                handler=_raise_with_shard_name,
            )
            .shuffle(self.shuffle_buffer)
            .map(self._encode)
            .compose(partial(bptt_windows, batch_size=self.batch_size, bptt=self.bptt))
        )
        batches = self.train_batches_per_epoch(world_size)
        loader = wds.WebLoader(pipeline, batch_size=None, num_workers=self.num_workers)
        return loader.with_epoch(batches).with_length(batches, silent=True)

    def val_dataloader(self) -> DataLoader:
        return self._exact_pass_loader("val")

    def test_dataloader(self) -> DataLoader:
        return self._exact_pass_loader("test")

    def _exact_pass_loader(self, split: str) -> DataLoader:
        rank, world_size = _rank_and_world()
        shards = self.manifest.shard_urls(split)[rank::world_size]
        if not shards:  # more ranks than shards: this rank contributes nothing
            return DataLoader(_NoSamples(), batch_size=None)
        pipeline = (
            wds.WebDataset(
                shards,
                shardshuffle=False,
                nodesplitter=None,
                empty_check=False,
                handler=_raise_with_shard_name,
            )
            .map(self._encode)
            .compose(partial(bptt_windows, batch_size=self.batch_size, bptt=self.bptt))
        )
        workers = min(self.num_workers, len(shards))
        return wds.WebLoader(pipeline, batch_size=None, num_workers=workers)

    def _encode(self, sample: dict[str, Any]) -> torch.Tensor:
        text = sample["txt"]
        if isinstance(text, bytes):
            text = text.decode("utf-8")
        return torch.tensor(self.tokenizer.encode(text), dtype=torch.long)


class _NoSamples(IterableDataset):
    """An empty stream with no len(), like the other ranks' loaders: Lightning runs a
    collective over ranks whose loaders have a length, so all must agree."""

    def __iter__(self) -> Iterator[Any]:
        return iter(())


def _rank_and_world() -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _raise_with_shard_name(exc: Exception) -> bool:
    """webdataset handler: a corrupt or missing shard becomes one error naming the file."""
    raise DatasetError(f"cannot read shard: {exc}") from exc

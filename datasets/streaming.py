"""How every reader streams shards under DDP, shared by all DataModules.

Training: every rank and loader worker draws shards at random, forever (resampled), and
the loader cuts each epoch at the same batch count on every rank, so a DDP all-reduce
never waits on a rank that ran out of data. Evaluation: rank r reads every world_size-th
shard exactly once, so metrics summed over ranks cover the split exactly.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch.distributed as dist
import webdataset as wds
from torch.utils.data import DataLoader, IterableDataset

from orchestrator.datasets.manifest import DatasetError


def rank_and_world() -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def training_source(urls: list[str]) -> wds.WebDataset:
    """Samples from shards drawn with replacement; never ends (see `training_loader`)."""
    return wds.WebDataset(
        urls, resampled=True, shardshuffle=False, nodesplitter=None, handler=raise_with_shard_name
    )


def training_loader(pipeline: IterableDataset, num_workers: int, batches: int) -> DataLoader:
    """Exactly `batches` batches per epoch on every rank; the pipeline yields batches."""
    loader = wds.WebLoader(pipeline, batch_size=None, num_workers=num_workers)
    return loader.with_epoch(batches).with_length(batches, silent=True)


def evaluation_shards(urls: list[str]) -> list[str]:
    """This rank's share of a split's shards for one exact pass."""
    rank, world_size = rank_and_world()
    return urls[rank::world_size]


def evaluation_source(shards: list[str]) -> wds.WebDataset:
    return wds.WebDataset(
        shards, shardshuffle=False, nodesplitter=None, empty_check=False,
        handler=raise_with_shard_name,
    )


def evaluation_loader(
    pipeline: IterableDataset | None, num_workers: int, num_shards: int
) -> DataLoader:
    """A loader over this rank's pass; an empty one (still without len()) for no shards."""
    if pipeline is None or num_shards == 0:
        return DataLoader(NoSamples(), batch_size=None)
    return wds.WebLoader(pipeline, batch_size=None, num_workers=min(num_workers, num_shards))


class NoSamples(IterableDataset):
    """An empty stream with no len(), like the other ranks' loaders: Lightning runs a
    collective over ranks whose loaders have a length, so all must agree."""

    def __iter__(self) -> Iterator[Any]:
        return iter(())


def raise_with_shard_name(exc: Exception) -> bool:
    """webdataset handler: a corrupt or missing shard becomes one error naming the file."""
    raise DatasetError(f"cannot read shard: {exc}") from exc

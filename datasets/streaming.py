"""How every reader streams shards under DDP, shared by all DataModules.

Training: every rank and loader worker walks its own share of the shards (all of them when
there are too few to share) in a fresh random order, pass after pass, in one stream for the
whole fit; the loader cuts that stream into epochs of the same batch count on every rank, so
a DDP all-reduce never waits on a rank that ran out of data. Evaluation: rank r reads every
world_size-th shard exactly once, so metrics summed over ranks cover the split exactly.
"""

from __future__ import annotations

import itertools
import multiprocessing
import random
from collections.abc import Iterable, Iterator
from functools import partial
from typing import Any

import torch
import torch.distributed as dist
import webdataset as wds
from lightning_fabric.utilities.seed import pl_worker_init_function
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from orchestrator.datasets.manifest import DatasetError


def rank_and_world() -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def training_source(urls: list[str]) -> wds.WebDataset:
    """Samples of this rank's and loader worker's shards, in a new order every pass; never
    ends (see `own_shard_passes`). Without replacement: one rank's epoch over the training
    split sees every sample once (drawing shards with replacement, as webdataset's
    `resampled` does, left a third of them unseen each epoch and repeated others)."""
    rank, world_size = rank_and_world()
    return wds.WebDataset(
        urls, shardshuffle=False, nodesplitter=None, handler=raise_with_shard_name,
        workersplitter=partial(own_shard_passes, rank=rank, world_size=world_size),
    )


def own_shard_passes(
    shards: Iterator[dict[str, Any]], rank: int, world_size: int
) -> Iterator[dict[str, Any]]:
    """This stream's (rank x loader worker) share of the shards, pass after pass, each in a
    new random order. Endless here, at the head of the pipeline, so that every stage after
    it runs on from one pass into the next: webdataset's `.repeat()` restarts the whole
    pipeline instead, and at each pass's end the language model's rows ran dry one by one
    (padded windows until the last row ended, then every row started over) and the
    bucketer flushed its buffer. The order is seeded from torch's seed (set by
    seed_everything, and per loader worker by the DataLoader), the stream and the pass:
    every rank starts from the same seed, and ranks that share all shards must not walk
    them in step. The passes are counted per stream, so two fits in one process (a
    notebook, `data.num_workers=0`) with the same seed walk the same orders."""
    worker = get_worker_info()
    workers, worker_id = (worker.num_workers, worker.id) if worker else (1, 0)
    streams, stream = world_size * workers, rank * workers + worker_id
    share = own_share(list(shards), stream, streams)
    if not share:
        return
    seed = torch.initial_seed()
    for walked in itertools.count():
        random.Random(f"{seed}-{stream}-{walked}").shuffle(share)
        # copies: the shard opener adds each pass's open file to the dict it is given
        yield from (dict(shard) for shard in share)


def own_share(shards: list[dict[str, Any]], stream: int, streams: int) -> list[dict[str, Any]]:
    """Stream `stream`'s shards of `streams`; all of them when there are too few to share
    (none idles, none runs dry)."""
    return shards[stream::streams] if len(shards) >= streams else shards


def training_loader(
    pipeline: IterableDataset, num_workers: int, batches: int, reader_module: str = __name__
) -> ContinuingEpochs:
    """Exactly `batches` batches per epoch on every rank; the pipeline yields batches.
    `reader_module` names the module that defines the pipeline's stages (see
    `worker_processes`)."""
    loader = wds.WebLoader(
        pipeline, batch_size=None, **worker_processes(num_workers, reader_module)
    )
    return ContinuingEpochs(loader.repeat(), batches)


class ContinuingEpochs:
    """Epochs of `batches` batches cut from one stream that runs for the whole fit.

    Not webdataset's `with_epoch`: it calls iter() on the DataLoader every epoch, which
    makes even persistent loader workers start their pipeline over. Each epoch then threw
    away the batches prefetched past its end, refilled the shuffle and bucket buffers
    before its first batch (the model waited), and began a new pass over the shards, so an
    epoch shorter than a pass never reached the rest of it."""

    def __init__(self, stream: Iterable[Any], batches: int) -> None:
        self.stream = stream
        self.batches = batches
        self._batches: Iterator[Any] | None = None

    def __len__(self) -> int:
        return self.batches

    def __iter__(self) -> Iterator[Any]:
        if self._batches is None:
            self._batches = iter(self.stream)
        return itertools.islice(self._batches, self.batches)


def worker_processes(num_workers: int, reader_module: str = __name__) -> dict[str, Any]:
    """DataLoader arguments for `num_workers` loader processes started by a fork server and
    kept for the whole fit. Not plain fork: a Ray Train worker has threads (Ray's, MLflow's
    logging and system metrics), and a child forked while one of them held a lock froze at
    start, leaving its rank's DDP peers waiting forever. The fork server is a fresh
    single-threaded process, so its children are safe; persistent workers pay its start-up
    once per fit instead of once per epoch. Lightning adds its worker init (seeding
    `random`, torch and numpy per rank and worker) only to loaders it can rebuild, which a
    WebLoader is not, so it is given here.

    The fork server imports, once, what every worker would otherwise import on its own to
    unpickle the pipeline: the module of its stages, which for a DataModule imports
    Lightning (seconds per worker on a busy 2-core machine). Only the first loader of a
    process sets this list: its fork server serves every later loader."""
    if num_workers == 0:
        return {"num_workers": 0}
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["torch", "webdataset", __name__, reader_module])
    rank, _ = rank_and_world()
    return {"num_workers": num_workers, "multiprocessing_context": context,
            "persistent_workers": True,
            "worker_init_fn": partial(pl_worker_init_function, rank=rank)}


def shuffled(samples: Iterator[Any], bufsize: int) -> Iterator[Any]:
    """webdataset's shuffle buffer, drawing from this process's `random`. Left to itself it
    seeds from the clock, and a run given a seed read its samples in a new order every
    time. In a loader worker, Lightning's worker init (`worker_processes`) seeds `random`
    from the run's seed, the rank and the worker; without workers, seed_everything does."""
    rng = random.Random(random.getrandbits(64))
    return wds.filters.shuffle(bufsize, rng=rng)(samples)


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
    pipeline: IterableDataset | None, num_workers: int, num_shards: int,
    reader_module: str = __name__,
) -> DataLoader:
    """A loader over this rank's pass; an empty one (still without len()) for no shards."""
    if pipeline is None or num_shards == 0:
        return DataLoader(NoSamples(), batch_size=None)
    processes = worker_processes(min(num_workers, num_shards), reader_module)
    return wds.WebLoader(pipeline, batch_size=None, **processes)


class NoSamples(IterableDataset):
    """An empty stream with no len(), like the other ranks' loaders: Lightning runs a
    collective over ranks whose loaders have a length, so all must agree."""

    def __iter__(self) -> Iterator[Any]:
        return iter(())


def raise_with_shard_name(exc: Exception) -> bool:
    """webdataset handler: a corrupt or missing shard becomes one error naming the file."""
    raise DatasetError(f"cannot read shard: {exc}") from exc

"""The base of every DataModule: stream a dataset's shards the way `streaming.py` says.

A task's DataModule only says how one sample is encoded (`encode`) and how encoded samples
become batches (`batches`); which shards each rank and loader worker reads, and how many
batches an epoch has, are the same for every task.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from functools import partial
from typing import Any

import pytorch_lightning as pl
from torch.utils.data import DataLoader

from orchestrator.datasets import streaming
from orchestrator.datasets.manifest import DatasetManifest, load_manifest


class ShardedDataModule(pl.LightningDataModule):
    def __init__(
        self,
        path: str,
        batch_size: int,
        num_workers: int = 1,
        shuffle_buffer: int = 1000,
        batches_per_epoch: int | None = None,
    ):
        super().__init__()
        self.path = path
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.shuffle_buffer = shuffle_buffer
        self.batches_per_epoch = batches_per_epoch
        self.manifest: DatasetManifest = load_manifest(path)

    def __getstate__(self) -> dict[str, Any]:
        """What a loader worker process receives, since the pipeline's stages are this
        object's methods: everything but the Trainer Lightning attached, which holds live
        iterators that cannot (and need not) cross a process boundary."""
        return {**vars(self), "trainer": None}

    # what a task's DataModule provides ----------------------------------------------------
    def encode(self, sample: dict[str, Any]) -> Any:
        """One raw shard sample -> what `batches` consumes."""
        raise NotImplementedError

    def batches(self, samples: Iterator[Any], train: bool) -> Iterator[Any]:
        """Encoded samples -> batches (the batch contract of `batches.py`)."""
        raise NotImplementedError

    def batches_in_train_split(self) -> float:
        """Batches one pass over the training split makes, over all ranks."""
        return self.manifest.splits["train"].samples / self.batch_size

    # shared -------------------------------------------------------------------------------
    def train_batches_per_epoch(self, world_size: int) -> int:
        """Batches each rank runs per epoch: one pass over the training split in total."""
        if self.batches_per_epoch is not None:
            return self.batches_per_epoch
        return max(1, math.ceil(self.batches_in_train_split() / world_size))

    def train_dataloader(self) -> streaming.ContinuingEpochs:
        _, world_size = streaming.rank_and_world()
        pipeline = (
            streaming.training_source(self.manifest.shard_urls("train"))
            .compose(partial(streaming.shuffled, bufsize=self.shuffle_buffer))
            .map(self.encode)
            .compose(partial(self.batches, train=True))
        )
        return streaming.training_loader(
            pipeline, self.num_workers, self.train_batches_per_epoch(world_size),
            reader_module=type(self).__module__,
        )

    def val_dataloader(self) -> DataLoader:
        return self._exact_pass_loader("val")

    def test_dataloader(self) -> DataLoader:
        return self._exact_pass_loader("test")

    def _exact_pass_loader(self, split: str) -> DataLoader:
        shards = streaming.evaluation_shards(self.manifest.shard_urls(split))
        pipeline = None
        if shards:
            pipeline = (
                streaming.evaluation_source(shards)
                .map(self.encode)
                .compose(partial(self.batches, train=False))
            )
        return streaming.evaluation_loader(
            pipeline, self.num_workers, len(shards), reader_module=type(self).__module__
        )


def text_of(value: str | bytes) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else value

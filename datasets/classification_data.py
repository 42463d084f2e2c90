"""The sentence-classification DataModule: shards of `txt` + `cls` -> padded batches.

Like the language-model reader: training draws resampled shards and stops every rank at
the same batch count (DDP never waits on a rank that ran dry); validation and test read
each shard once, split across ranks by shard, so accuracy covers the split exactly.
"""

from __future__ import annotations

import math
from typing import Any

import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader

from orchestrator.datasets import streaming
from orchestrator.datasets.batches import ClassificationBatch
from orchestrator.datasets.manifest import DatasetError, DatasetManifest, load_manifest
from orchestrator.datasets.tokenizer import Tokenizer


class ClassificationDataModule(pl.LightningDataModule):
    def __init__(
        self,
        path: str,
        batch_size: int = 32,
        num_workers: int = 1,
        shuffle_buffer: int = 1000,
        batches_per_epoch: int | None = None,
        max_tokens: int = 200,
    ):
        super().__init__()
        self.path = path
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.shuffle_buffer = shuffle_buffer
        self.batches_per_epoch = batches_per_epoch
        self.max_tokens = max_tokens
        self.manifest: DatasetManifest = load_manifest(path)
        if not self.manifest.labels:
            raise DatasetError(f"dataset {path} lists no labels; is it a classification set?")
        self.labels = self.manifest.labels
        self.tokenizer = Tokenizer.from_json(self.manifest.read_file(self.manifest.vocab_file))

    def train_batches_per_epoch(self, world_size: int) -> int:
        if self.batches_per_epoch is not None:
            return self.batches_per_epoch
        samples = self.manifest.splits["train"].samples
        return max(1, math.ceil(samples / (self.batch_size * world_size)))

    def train_dataloader(self) -> DataLoader:
        _, world_size = streaming.rank_and_world()
        pipeline = (
            streaming.training_source(self.manifest.shard_urls("train"))
            .shuffle(self.shuffle_buffer)
            .map(self._encode)
            .batched(self.batch_size, collation_fn=collate, partial=False)
        )
        batches = self.train_batches_per_epoch(world_size)
        return streaming.training_loader(pipeline, self.num_workers, batches)

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
                .map(self._encode)
                .batched(self.batch_size, collation_fn=collate, partial=True)
            )
        return streaming.evaluation_loader(pipeline, self.num_workers, len(shards))

    def _encode(self, sample: dict[str, Any]) -> tuple[list[int], int]:
        text = sample["txt"].decode("utf-8") if isinstance(sample["txt"], bytes) else sample["txt"]
        ids = self.tokenizer.encode(text)[: self.max_tokens] or [self.tokenizer.unk_id]
        return ids, int(sample["cls"])


def collate(examples: list[tuple[list[int], int]]) -> ClassificationBatch:
    lengths = torch.tensor([len(ids) for ids, _ in examples])
    tokens = torch.zeros(len(examples), int(lengths.max()), dtype=torch.long)
    for row, (ids, _) in enumerate(examples):
        tokens[row, : len(ids)] = torch.tensor(ids)
    labels = torch.tensor([label for _, label in examples])
    return ClassificationBatch(tokens=tokens, lengths=lengths, labels=labels)

"""The sentence-classification DataModule: shards of `txt` + `cls` -> padded batches."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch
import webdataset as wds

from orchestrator.datasets.batches import ClassificationBatch
from orchestrator.datasets.manifest import DatasetError
from orchestrator.datasets.sharded_data import ShardedDataModule, text_of
from orchestrator.datasets.tokenizer import Tokenizer

Example = tuple[list[int], int]  # (token ids, class index)


class ClassificationDataModule(ShardedDataModule):
    def __init__(
        self,
        path: str,
        batch_size: int = 32,
        num_workers: int = 1,
        shuffle_buffer: int = 1000,
        batches_per_epoch: int | None = None,
        max_tokens: int = 200,
    ):
        super().__init__(path, batch_size, num_workers, shuffle_buffer, batches_per_epoch)
        self.max_tokens = max_tokens
        if not self.manifest.labels:
            raise DatasetError(f"dataset {path} lists no labels; is it a classification set?")
        self.labels = self.manifest.labels
        self.tokenizer = Tokenizer.from_json(self.manifest.read_file(self.manifest.vocab_file))

    def encode(self, sample: dict[str, Any]) -> Example:
        ids = self.tokenizer.encode(text_of(sample["txt"]))[: self.max_tokens]
        return ids or [self.tokenizer.unk_id], int(sample["cls"])

    def batches(self, samples: Iterator[Example], train: bool) -> Iterator[ClassificationBatch]:
        # training batches are all full; evaluation keeps the last, short one
        return wds.batched(self.batch_size, collation_fn=collate, partial=not train)(samples)


def collate(examples: list[Example]) -> ClassificationBatch:
    lengths = torch.tensor([len(ids) for ids, _ in examples])
    tokens = torch.zeros(len(examples), int(lengths.max()), dtype=torch.long)
    for row, (ids, _) in enumerate(examples):
        tokens[row, : len(ids)] = torch.tensor(ids)
    labels = torch.tensor([label for _, label in examples])
    return ClassificationBatch(tokens=tokens, lengths=lengths, labels=labels)

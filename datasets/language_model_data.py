"""The language-model DataModule: WebDataset shards of `txt` -> BPTT windows per rank.

Sharding across ranks and loader workers follows `streaming.py`; each loader worker cuts
its segments into BPTT windows over `batch_size` parallel rows (`bptt_windows.py`).
"""

from __future__ import annotations

import math
from functools import partial
from typing import Any

import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader

from orchestrator.datasets import streaming
from orchestrator.datasets.bptt_windows import bptt_windows
from orchestrator.datasets.manifest import DatasetManifest, load_manifest
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
        _, world_size = streaming.rank_and_world()
        pipeline = (
            streaming.training_source(self.manifest.shard_urls("train"))
            .shuffle(self.shuffle_buffer)
            .map(self._encode)
            .compose(self._windows)
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
            pipeline = streaming.evaluation_source(shards).map(self._encode).compose(self._windows)
        return streaming.evaluation_loader(pipeline, self.num_workers, len(shards))

    @property
    def _windows(self) -> Any:
        return partial(bptt_windows, batch_size=self.batch_size, bptt=self.bptt)

    def _encode(self, sample: dict[str, Any]) -> torch.Tensor:
        text = sample["txt"]
        if isinstance(text, bytes):
            text = text.decode("utf-8")
        return torch.tensor(self.tokenizer.encode(text), dtype=torch.long)

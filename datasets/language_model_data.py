"""The language-model DataModule: shards of `txt` segments -> BPTT windows per rank.

Each loader worker cuts its segments into windows over `batch_size` parallel rows
(`bptt_windows.py`), so a row's consecutive windows are consecutive text.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch

from orchestrator.datasets.batches import LanguageModelBatch
from orchestrator.datasets.bptt_windows import bptt_windows
from orchestrator.datasets.sharded_data import ShardedDataModule, text_of
from orchestrator.datasets.tokenizer import Tokenizer


class LanguageModelDataModule(ShardedDataModule):
    def __init__(
        self,
        path: str,
        batch_size: int = 32,
        bptt: int = 64,
        num_workers: int = 1,
        shuffle_buffer: int = 64,
        batches_per_epoch: int | None = None,
    ):
        super().__init__(path, batch_size, num_workers, shuffle_buffer, batches_per_epoch)
        self.bptt = bptt
        self.tokenizer = Tokenizer.from_json(self.manifest.read_file(self.manifest.vocab_file))

    def batches_in_train_split(self) -> float:
        return self.manifest.splits["train"].tokens / (self.batch_size * self.bptt)

    def encode(self, sample: dict[str, Any]) -> torch.Tensor:
        return torch.tensor(self.tokenizer.encode(text_of(sample["txt"])), dtype=torch.long)

    def batches(self, samples: Iterator[torch.Tensor], train: bool) -> Iterator[LanguageModelBatch]:
        return bptt_windows(samples, self.batch_size, self.bptt)

"""The translation DataModule: shards of raw `src.txt`/`tgt.txt` -> length-bucketed batches.

Loader workers Moses-tokenise and look up ids; sharding across ranks follows
`streaming.py` (equal batch counts in training, one exact pass in evaluation).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import partial
from typing import Any

import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader

from orchestrator.datasets import streaming
from orchestrator.datasets.batches import IGNORE_INDEX, TranslationBatch
from orchestrator.datasets.buckets import bucketed_batches
from orchestrator.datasets.manifest import DatasetError, DatasetManifest, load_manifest
from orchestrator.datasets.text_processing import subword_models, text_processors
from orchestrator.datasets.tokenizer import BOS, EOS, PAD, Tokenizer


@dataclass
class Pair:
    src_ids: list[int]
    tgt_ids: list[int]
    source: str
    reference: str


class TranslationDataModule(pl.LightningDataModule):
    def __init__(
        self,
        path: str,
        batch_size: int = 64,
        num_workers: int = 1,
        shuffle_buffer: int = 2000,
        batches_per_epoch: int | None = None,
        max_tokens: int = 100,
    ):
        super().__init__()
        self.path = path
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.shuffle_buffer = shuffle_buffer
        self.batches_per_epoch = batches_per_epoch
        self.max_tokens = max_tokens
        self.manifest: DatasetManifest = load_manifest(path)
        if not self.manifest.target_vocab_file or not self.manifest.text:
            raise DatasetError(f"dataset {path} has no target vocabulary; is it a translation set?")
        self.source_vocab = Tokenizer.from_json(self.manifest.read_file(self.manifest.vocab_file))
        self.target_vocab = Tokenizer.from_json(
            self.manifest.read_file(self.manifest.target_vocab_file)
        )
        self.lowercase = self.manifest.text.get("lowercase") == "true"
        self.text_models = subword_models(self.manifest.text, self.manifest.read_binary)
        self.source_text, self.target_text = text_processors(self.manifest.text,
                                                             self.text_models)

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
            .compose(partial(bucketed_batches, batch_size=self.batch_size, length=_length))
            .map(self._collate)
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
                .compose(partial(bucketed_batches, batch_size=self.batch_size, length=_length,
                                 shuffle=False))
                .map(self._collate)
            )
        return streaming.evaluation_loader(pipeline, self.num_workers, len(shards))

    def encode_source(self, sentence: str) -> list[int]:
        ids = self.source_vocab.encode(self.source_text.tokenize(sentence))
        return ids[: self.max_tokens] or [self.source_vocab.unk_id]

    def _encode(self, sample: dict[str, Any]) -> Pair:
        source, reference = _text(sample["src.txt"]), _text(sample["tgt.txt"])
        if self.lowercase:  # BLEU of lower-cased output is against lower-cased references
            reference = reference.lower()
        tgt_ids = self.target_vocab.encode(self.target_text.tokenize(reference))
        return Pair(self.encode_source(source), tgt_ids[: self.max_tokens], source, reference)

    def _collate(self, pairs: list[Pair]) -> TranslationBatch:
        return collate_pairs(pairs, self.source_vocab.index[PAD], self.target_vocab)


def collate_pairs(pairs: list[Pair], source_pad: int, target_vocab: Tokenizer) -> TranslationBatch:
    pad, bos, eos = (target_vocab.index[token] for token in (PAD, BOS, EOS))
    src_lengths = torch.tensor([len(p.src_ids) for p in pairs])
    longest_target = max(len(p.tgt_ids) for p in pairs) + 1
    src = torch.full((len(pairs), int(src_lengths.max())), source_pad, dtype=torch.long)
    tgt_in = torch.full((len(pairs), longest_target), pad, dtype=torch.long)
    tgt_out = torch.full((len(pairs), longest_target), IGNORE_INDEX, dtype=torch.long)
    for row, pair in enumerate(pairs):
        src[row, : len(pair.src_ids)] = torch.tensor(pair.src_ids)
        tgt_in[row, : len(pair.tgt_ids) + 1] = torch.tensor([bos, *pair.tgt_ids])
        tgt_out[row, : len(pair.tgt_ids) + 1] = torch.tensor([*pair.tgt_ids, eos])
    return TranslationBatch(
        src=src, src_lengths=src_lengths, tgt_in=tgt_in, tgt_out=tgt_out,
        sources=[p.source for p in pairs], references=[p.reference for p in pairs],
    )


def _length(pair: Pair) -> int:
    return len(pair.src_ids)


def _text(value: str | bytes) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else value

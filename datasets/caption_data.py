"""Captioning DataModules: shards of an image (or a clip) + `json` captions -> batches.

Loader workers decode the media (PIL for images, PyAV for mp4 clips) and tokenise the
captions. Training teaches one caption per visit, drawn at random from the item's
references; evaluation teaches with the first and scores against all of them.
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import webdataset as wds

from orchestrator.datasets.batches import IGNORE_INDEX, CaptionBatch, VideoBatch
from orchestrator.datasets.caption_text import caption_words
from orchestrator.datasets.images import decode_image, image_tensor, normalise
from orchestrator.datasets.manifest import DatasetError
from orchestrator.datasets.sharded_data import ShardedDataModule, text_of
from orchestrator.datasets.streaming import evaluation_source
from orchestrator.datasets.tokenizer import BOS, EOS, PAD, Tokenizer
from orchestrator.datasets.video_frames import (
    sample_frames,
    undecodable_clip,
    uniform_indices,
)

FRAME_KEY = re.compile(r"^\d{3}\.jpg$")  # pre-extracted frames: 000.jpg, 001.jpg, ...


@dataclass
class Captioned:
    pixels: torch.Tensor  # (3, H, W) image or (F, 3, H, W) frames
    captions: list[list[int]]  # token ids of every caption
    references: list[str]  # the raw captions
    id: str


class CaptionDataModule(ShardedDataModule):
    """Images (`jpg` or `png`) with captions; batches follow `CaptionBatch`."""

    inputs = "images"  # the batch key the pixels go under

    def __init__(
        self,
        path: str,
        batch_size: int = 32,
        num_workers: int = 1,
        shuffle_buffer: int = 256,
        batches_per_epoch: int | None = None,
        image_size: int = 64,
        max_tokens: int = 30,
    ):
        super().__init__(path, batch_size, num_workers, shuffle_buffer, batches_per_epoch)
        self.image_size = image_size
        self.max_tokens = max_tokens
        self.vocab = Tokenizer.from_json(self.manifest.read_file(self.manifest.vocab_file))
        if BOS not in self.vocab.index:
            raise DatasetError(f"dataset {path} has no <bos> in its vocabulary; "
                               "is it a captioning set?")

    def pixels(self, sample: dict[str, Any]) -> torch.Tensor:
        data = sample.get("jpg", sample.get("png"))
        if data is None:
            raise DatasetError(f"sample {sample.get('__key__')} in {sample.get('__url__')} "
                               "has no jpg or png image")
        return image_tensor(data, self.image_size)

    def encode(self, sample: dict[str, Any]) -> Captioned:
        meta = json.loads(text_of(sample["json"]))
        captions = [str(caption) for caption in meta["captions"]]
        ids = [self.vocab.encode(" ".join(caption_words(c)))[: self.max_tokens]
               for c in captions]
        return Captioned(self.pixels(sample), ids, captions, str(meta["id"]))

    def train_references(self) -> list[list[str]]:
        """Every training item's captions as space-joined words (`caption_words`, as the
        vocabulary was built): the corpus of SCST's CIDEr-D document frequencies. Reads each
        sample's json, never decoding its pixels."""
        source = evaluation_source(self.manifest.shard_urls("train"))
        return [[" ".join(caption_words(str(caption)))
                 for caption in json.loads(text_of(sample["json"]))["captions"]]
                for sample in source]

    def batches(self, samples: Iterator[Captioned], train: bool) -> Iterator[dict[str, Any]]:
        # training batches are all full; evaluation keeps the last, short one
        def collate(items: list[Captioned]) -> dict[str, Any]:
            return collate_captioned(items, self.vocab, self.inputs, train)

        return wds.batched(self.batch_size, collation_fn=collate, partial=not train)(samples)


class VideoCaptionDataModule(CaptionDataModule):
    """Clips (`mp4`, or frames `000.jpg`...) with captions; batches follow `VideoBatch`.
    Every clip becomes `frames` frames sampled uniformly over its length."""

    inputs = "frames"

    def __init__(self, path: str, *args: Any, frames: int = 8, **kwargs: Any):
        super().__init__(path, *args, **kwargs)
        self.frames = frames

    def pixels(self, sample: dict[str, Any]) -> torch.Tensor:
        try:
            return normalise(self._frames(sample))
        except Exception as exc:  # noqa: BLE001 - name the clip whatever the decoder raised
            clip_id = json.loads(text_of(sample["json"])).get("id")
            raise undecodable_clip(clip_id, sample, exc) from exc

    def _frames(self, sample: dict[str, Any]) -> np.ndarray:
        if "mp4" in sample:
            return sample_frames(sample["mp4"], self.frames, self.image_size)
        stored = sorted(key for key in sample if FRAME_KEY.match(key))
        if not stored:
            raise ValueError("the sample holds neither an mp4 nor NNN.jpg frames")
        picked = [stored[i] for i in uniform_indices(len(stored), self.frames)]
        return np.stack([decode_image(sample[key], self.image_size) for key in picked])


def collate_captioned(
    items: list[Captioned], vocab: Tokenizer, inputs: str, train: bool
) -> CaptionBatch | VideoBatch:
    """Stack the pixels; teacher-force one caption per item (random when training)."""
    pad, bos, eos = (vocab.index[token] for token in (PAD, BOS, EOS))
    chosen = [random.choice(item.captions) if train else item.captions[0] for item in items]
    longest = max(len(ids) for ids in chosen) + 1
    tgt_in = torch.full((len(items), longest), pad, dtype=torch.long)
    tgt_out = torch.full((len(items), longest), IGNORE_INDEX, dtype=torch.long)
    for row, ids in enumerate(chosen):
        tgt_in[row, : len(ids) + 1] = torch.tensor([bos, *ids])
        tgt_out[row, : len(ids) + 1] = torch.tensor([*ids, eos])
    batch = {inputs: torch.stack([item.pixels for item in items]), "tgt_in": tgt_in,
             "tgt_out": tgt_out, "references": [item.references for item in items],
             "ids": [item.id for item in items]}
    return VideoBatch(**batch) if inputs == "frames" else CaptionBatch(**batch)

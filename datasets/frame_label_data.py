"""The frame-labelling DataModule: shards of a clip (`mp4`) + `json {"labels": [...]}` ->
batches of frames with a label each.

A clip becomes `frames` frames picked uniformly over its length (`video_frames`), and the
labels are picked at the same indices, so every sampled frame keeps its own label.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import torch
import webdataset as wds

from orchestrator.datasets.batches import FrameLabelBatch
from orchestrator.datasets.images import normalise
from orchestrator.datasets.manifest import DatasetError
from orchestrator.datasets.sharded_data import ShardedDataModule, text_of
from orchestrator.datasets.video_frames import (
    decode_frames,
    undecodable_clip,
    uniform_indices,
)


class FrameLabelDataModule(ShardedDataModule):
    def __init__(
        self,
        path: str,
        batch_size: int = 32,
        num_workers: int = 1,
        shuffle_buffer: int = 256,
        batches_per_epoch: int | None = None,
        image_size: int = 64,
        frames: int = 8,
    ):
        super().__init__(path, batch_size, num_workers, shuffle_buffer, batches_per_epoch)
        self.image_size = image_size
        self.frames = frames
        if not self.manifest.labels:
            raise DatasetError(f"dataset {path} lists no labels; is it a frame-labelled set?")
        self.labels = self.manifest.labels
        self.label_index = {name: index for index, name in enumerate(self.labels)}

    def encode(self, sample: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor, str]:
        """(frames (F, 3, H, W), labels (F,), clip id)."""
        meta = json.loads(text_of(sample["json"]))
        try:
            decoded = decode_frames(sample["mp4"], self.image_size)
        except Exception as exc:  # noqa: BLE001 - name the clip whatever the decoder raised
            raise undecodable_clip(meta.get("id"), sample, exc) from exc
        if len(decoded) != len(meta["labels"]):
            raise DatasetError(f"clip {meta.get('id')} in {sample.get('__url__')} has "
                               f"{len(decoded)} frames but {len(meta['labels'])} labels")
        picked = uniform_indices(len(decoded), self.frames)
        labels = torch.tensor([self.label_index[meta["labels"][i]] for i in picked])
        return normalise(decoded[picked]), labels, str(meta["id"])

    def batches(self, samples: Iterator[Any], train: bool) -> Iterator[FrameLabelBatch]:
        # training batches are all full; evaluation keeps the last, short one
        def collate(items: list[tuple[torch.Tensor, torch.Tensor, str]]) -> FrameLabelBatch:
            return FrameLabelBatch(frames=torch.stack([item[0] for item in items]),
                                   labels=torch.stack([item[1] for item in items]),
                                   ids=[item[2] for item in items])

        return wds.batched(self.batch_size, collation_fn=collate, partial=not train)(samples)

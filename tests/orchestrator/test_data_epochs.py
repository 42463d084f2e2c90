"""The epoch number reaches a streamed DataModule before that epoch's loader worker starts."""

from __future__ import annotations

from collections.abc import Iterator

import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, IterableDataset

from orchestrator.worker.data_epochs import EpochToDataModule


class EpochStream(IterableDataset):
    """One batch per pass: the epoch its loader worker found on the DataModule."""

    def __init__(self, datamodule: EpochData):
        self.datamodule = datamodule

    def __iter__(self) -> Iterator[torch.Tensor]:
        yield torch.tensor([float(self.datamodule.epoch)])


class EpochData(pl.LightningDataModule):
    def __init__(self):
        super().__init__()
        self.epoch = -1

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def train_dataloader(self) -> DataLoader:
        self.set_epoch(0)
        return DataLoader(EpochStream(self), batch_size=None, num_workers=1)


class SeenEpochs(pl.LightningModule):
    def __init__(self):
        super().__init__()
        self.layer = torch.nn.Linear(1, 1)
        self.seen: list[int] = []

    def training_step(self, batch: torch.Tensor, batch_idx: int) -> torch.Tensor:
        self.seen.append(int(batch.item()))
        return self.layer(batch).sum()

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.1)


def test_each_epochs_loader_worker_sees_that_epoch():
    module = SeenEpochs()
    trainer = pl.Trainer(max_epochs=3, accelerator="cpu", logger=False,
                         enable_progress_bar=False, enable_checkpointing=False,
                         enable_model_summary=False, callbacks=[EpochToDataModule()])
    trainer.fit(module, datamodule=EpochData())
    assert module.seen == [0, 1, 2]

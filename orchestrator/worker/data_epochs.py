"""Each training epoch's number, handed to the DataModule before that epoch's loader workers
start: streamed data has no sampler for Lightning to call `set_epoch` on."""

from __future__ import annotations

import pytorch_lightning as pl


class EpochToDataModule(pl.Callback):
    """Calls the DataModule's `set_epoch` at each training epoch's start. Lightning creates
    an epoch's loader iterator (and forks its workers) after this hook from the second epoch
    on; the first epoch's iterator exists before any hook, so a DataModule sets epoch 0
    itself."""

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        set_epoch = getattr(trainer.datamodule, "set_epoch", None)
        if set_epoch is not None:
            set_epoch(trainer.current_epoch)

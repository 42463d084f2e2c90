"""A fit resumed from a checkpoint trains on batches of its own, not the first epoch's again
(NewDrawsOnResume), on real shards through Lightning, as a restarted worker resumes."""

from __future__ import annotations

from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch

from orchestrator.datasets.language_model_data import LanguageModelDataModule
from orchestrator.worker.restarts import NewDrawsOnResume
from tests.lightning_modules.test_language_model import one_layer_task

SEED = 7
BATCHES = 4


class RecordInputs(pl.Callback):
    """The inputs of every training batch, in order."""

    def __init__(self) -> None:
        self.inputs: list[torch.Tensor] = []

    def on_train_batch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule,
                             batch, batch_idx: int) -> None:
        self.inputs.append(batch["inputs"].clone())


def fit(dataset: Path, epochs: int, callbacks: list[pl.Callback],
        resume_from: Path | None = None, save_to: Path | None = None) -> list[torch.Tensor]:
    """The training inputs of a fit to `epochs`, seeded like a worker (the run's seed)."""
    pl.seed_everything(SEED, workers=True, verbose=False)
    datamodule = LanguageModelDataModule(str(dataset), batch_size=4, bptt=16, num_workers=1,
                                         batches_per_epoch=BATCHES)
    task = one_layer_task(datamodule, "gru", embedding_dim=8, hidden_size=16)
    recorder = RecordInputs()
    trainer = pl.Trainer(max_epochs=epochs, accelerator="cpu", logger=False,
                         enable_progress_bar=False, enable_checkpointing=False,
                         enable_model_summary=False, num_sanity_val_steps=0,
                         limit_val_batches=0, callbacks=[recorder, *callbacks])
    trainer.fit(task, datamodule=datamodule,
                ckpt_path=str(resume_from) if resume_from else None, weights_only=True)
    if save_to is not None:
        trainer.save_checkpoint(save_to)
    return recorder.inputs


@pytest.fixture(scope="module")
def first_epoch(markov_dataset: Path, tmp_path_factory: pytest.TempPathFactory):
    """The first epoch's inputs and the checkpoint at its end."""
    checkpoint = tmp_path_factory.mktemp("resumed") / "epoch0.ckpt"
    return fit(markov_dataset, 1, [], save_to=checkpoint), checkpoint


def test_without_reseeding_a_resumed_fit_replays_the_first_epoch(markov_dataset, first_epoch):
    # the defect NewDrawsOnResume mends; should Lightning ever restore the random state
    # itself, this fails and the callback can go
    inputs, checkpoint = first_epoch
    resumed = fit(markov_dataset, 2, [], resume_from=checkpoint)
    assert len(resumed) == BATCHES
    assert all(torch.equal(a, b) for a, b in zip(resumed, inputs, strict=True))


def test_a_resumed_fit_trains_on_batches_of_its_own(markov_dataset, first_epoch):
    inputs, checkpoint = first_epoch
    resumed = fit(markov_dataset, 2, [NewDrawsOnResume(SEED)], resume_from=checkpoint)
    assert len(resumed) == BATCHES
    assert not any(torch.equal(a, b) for a, b in zip(resumed, inputs, strict=True))
    # and the same ones every time that checkpoint is resumed
    again = fit(markov_dataset, 2, [NewDrawsOnResume(SEED)], resume_from=checkpoint)
    assert all(torch.equal(a, b) for a, b in zip(again, resumed, strict=True))


def test_a_fresh_fit_is_not_reseeded(markov_dataset, first_epoch):
    inputs, _ = first_epoch
    fresh = fit(markov_dataset, 1, [NewDrawsOnResume(SEED + 1)])
    assert all(torch.equal(a, b) for a, b in zip(fresh, inputs, strict=True))

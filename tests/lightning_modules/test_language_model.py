"""The LM learns a sequence of known entropy, and generates text that follows its rule."""

from __future__ import annotations

import pytest
import pytorch_lightning as pl
import torch

from orchestrator.config import load_config
from orchestrator.datasets.language_model_data import LanguageModelDataModule
from orchestrator.datasets.synthetic import MARKOV_ALPHABET, MARKOV_PERPLEXITY
from orchestrator.lightning_modules.cells import RNN_CELLS
from orchestrator.lightning_modules.language_model import LanguageModelTask, trimmed_continuation
from orchestrator.lightning_modules.optimizers import ApplyOptimSettings
from orchestrator.lightning_modules.rnn_language_model import (
    RNNLanguageModel,
    RNNLanguageModelConfig,
)
from orchestrator.worker.tasks import TASKS
from tests.models import settings

OPTIM = {"optimizer": "adam", "lr": 1e-2, "weight_decay": 0.0, "clip": 1.0,
         "clip_mode": "norm", "lr_decay": 1.0, "lr_decay_start": 0}


def one_layer_task(datamodule: LanguageModelDataModule, cell: str, embedding_dim: int,
                   hidden_size: int, optim: dict = OPTIM) -> LanguageModelTask:
    """A one-layer model without dropout over the data's characters."""
    return LanguageModelTask(
        model=settings(RNNLanguageModelConfig, cell=cell, embedding_dim=embedding_dim,
                       hidden_size=hidden_size, num_layers=1, dropout=0.0),
        optim=optim, vocab=datamodule.tokenizer.tokens, level="char",
    )


@pytest.fixture(scope="module")
def trained(markov_dataset):
    datamodule = LanguageModelDataModule(str(markov_dataset), batch_size=16, bptt=32,
                                         num_workers=0, batches_per_epoch=40)
    task = one_layer_task(datamodule, "lstm", embedding_dim=16, hidden_size=32)
    trainer = pl.Trainer(max_epochs=3, accelerator="cpu", logger=False,
                         enable_progress_bar=False, enable_checkpointing=False,
                         enable_model_summary=False, gradient_clip_val=1.0)
    trainer.fit(task, datamodule=datamodule)
    return task, trainer.validate(task, datamodule=datamodule, verbose=False)[0]


def test_reaches_the_entropy_of_the_markov_chain(trained):
    _, metrics = trained
    # The chain's perplexity is 2 (one bit per char); nothing can do better on held-out text.
    assert MARKOV_PERPLEXITY - 0.05 < metrics["val_perplexity"] < MARKOV_PERPLEXITY + 0.1
    assert metrics["val_bpc"] == pytest.approx(1.0, abs=0.08)


def test_generated_text_follows_the_chain(trained):
    task, _ = trained
    text = task.generate_text("a", length=300, temperature=0.7, seed=3)
    steps = [(MARKOV_ALPHABET.index(b) - MARKOV_ALPHABET.index(a)) % len(MARKOV_ALPHABET)
             for a, b in zip(text, text[1:], strict=False)]
    legal = sum(step in (1, 3) for step in steps)
    assert legal / len(steps) > 0.97
    assert 0.3 < steps.count(1) / len(steps) < 0.7  # both moves, as the chain does


def test_a_logged_sample_says_its_prompt_and_settings(trained):
    task, _ = trained
    config = load_config(None, ["generate.prompts=[ab, c]", "generate.temperature=0.7",
                                "generate.length=50", "seed=3"])
    samples = TASKS["language_model"].samples(task, config)
    assert len(samples) == 2
    first = samples[0]
    assert first.startswith("prompt: 'ab'\nsettings: temperature 0.7, 50 char tokens sampled, "
                            "seed 3\n")
    text = first.split("\n\n")[1]
    assert text == task.generate_text("ab", length=50, temperature=0.7, seed=3)
    # the chain's text has no sentences or words: kept whole, and the cap said
    assert first.endswith("[sampling stopped at the 50-token length cap mid-sentence]")


CAP = "sampling stopped at the 40-token length cap"


@pytest.mark.parametrize("text, kept, ending", [
    (" the cat sat. the dog ran. the bird", " the cat sat. the dog ran.",
     f"{CAP}; cut after the last full sentence (9 characters after it dropped)"),
    (" the cat sat.\nthe dog ran\n", " the cat sat.\nthe dog ran", f"{CAP}, at a sentence end"),
    (" a cat. then a very long sentence that goes on",
     " a cat. then a very long sentence that goes …",
     f"{CAP} mid-sentence; cut after the last whole word"),
])
def test_samples_end_at_a_sentence_or_a_word_and_say_so(text, kept, ending):
    assert trimmed_continuation(text, 40) == (kept, ending)


@pytest.mark.parametrize("cell", sorted(RNN_CELLS))
def test_every_cell_runs_with_carried_state(cell):
    model = RNNLanguageModel(RNNLanguageModelConfig(vocab_size=11, **settings(
        RNNLanguageModelConfig, cell=cell, embedding_dim=8, hidden_size=8, tie_weights=True)))
    logits, hidden = model(torch.randint(0, 11, (3, 5)))
    assert logits.shape == (3, 5, 11)
    logits, _ = model(torch.randint(0, 11, (3, 5)), hidden)
    assert model.output.weight is model.embedding.weight
    assert isinstance(model.rnn, RNN_CELLS[cell])


class _LearningRateAtStart(pl.Callback):
    def on_train_start(self, trainer, pl_module):
        self.seen = [group["lr"] for group in trainer.optimizers[0].param_groups]


def test_a_checkpoint_resumed_with_a_new_lr_trains_at_the_new_lr(markov_dataset, tmp_path):
    """A PBT clone restores another trial's optimiser state, its learning rate included;
    the clone's own config must win (with the decay schedule's factor kept)."""
    datamodule = LanguageModelDataModule(str(markov_dataset), batch_size=8, bptt=16,
                                         num_workers=0, batches_per_epoch=2)

    def fit(lr: float, epochs: int, ckpt_path=None) -> list[float]:
        task = one_layer_task(datamodule, "gru", embedding_dim=8, hidden_size=8, optim={
            **OPTIM, "lr": lr, "lr_decay": 0.5, "lr_decay_start": 1})
        seen = _LearningRateAtStart()
        trainer = pl.Trainer(max_epochs=epochs, accelerator="cpu", logger=False,
                             enable_progress_bar=False, enable_checkpointing=False,
                             enable_model_summary=False, limit_val_batches=0,
                             callbacks=[ApplyOptimSettings(), seen])
        trainer.fit(task, datamodule=datamodule, ckpt_path=ckpt_path)
        trainer.save_checkpoint(tmp_path / f"lr{lr}.ckpt")
        return seen.seen

    assert fit(0.03, epochs=2) == [pytest.approx(0.03)]
    # two epochs done: the schedule's factor is 0.5 ** 2, applied to the new lr
    assert fit(0.001, epochs=3, ckpt_path=tmp_path / "lr0.03.ckpt") == [
        pytest.approx(0.001 * 0.25)]


def test_the_carried_state_continues_into_the_next_epoch(markov_dataset):
    """The training stream runs on across epochs (streaming.ContinuingEpochs), so an
    epoch's first window continues the rows of the last one: it must get their state, not
    start from zeros without a reset flag."""
    datamodule = LanguageModelDataModule(str(markov_dataset), batch_size=4, bptt=8,
                                         num_workers=0, batches_per_epoch=2)
    task = one_layer_task(datamodule, "gru", embedding_dim=8, hidden_size=8)
    given_state: list[bool] = []
    forward = task.model.forward

    def recording_forward(inputs, hidden=None):
        if task.training:
            given_state.append(hidden is not None)
        return forward(inputs, hidden)

    task.model.forward = recording_forward
    trainer = pl.Trainer(max_epochs=3, accelerator="cpu", logger=False,
                         enable_progress_bar=False, enable_checkpointing=False,
                         enable_model_summary=False, limit_val_batches=0)
    trainer.fit(task, datamodule=datamodule)
    # the first window of the fit starts every row; every later one continues from the last
    assert given_state == [False, True, True, True, True, True]

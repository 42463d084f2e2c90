"""Perplexity is exp of the token-weighted mean cross-entropy over the whole split."""

from __future__ import annotations

import math

import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader

from orchestrator.datasets.batches import IGNORE_INDEX, LanguageModelBatch
from orchestrator.lightning_modules.language_model import LanguageModelTask
from orchestrator.lightning_modules.metrics import bits_per_token, perplexity_metric
from orchestrator.lightning_modules.rnn_language_model import RNNLanguageModelConfig
from tests.models import settings

PROBS = torch.tensor([0.5, 0.25, 0.125, 0.125])  # the fixed next-token distribution


def fixed_distribution_task() -> LanguageModelTask:
    """A model whose every prediction is PROBS, whatever the input: the output layer
    ignores the hidden state (zero weights) and its bias holds log PROBS."""
    task = LanguageModelTask(
        model=settings(RNNLanguageModelConfig, cell="gru", embedding_dim=4, hidden_size=4,
                       num_layers=1, dropout=0.0),
        optim={"optimizer": "adam", "lr": 1e-3, "weight_decay": 0.0, "clip": None,
               "clip_mode": "norm", "lr_decay": 1.0, "lr_decay_start": 0},
        vocab=["<unk>", "a", "b", "c"], level="char",
    )
    with torch.no_grad():
        task.model.output.weight.zero_()
        task.model.output.bias.copy_(PROBS.log())
    return task


def batch(targets: list[list[int]]) -> LanguageModelBatch:
    tensor = torch.tensor(targets)
    return LanguageModelBatch(
        inputs=tensor.clamp(min=0), targets=tensor,
        reset=torch.ones(len(targets), dtype=torch.bool), stream=0,
    )


def test_uniform_prediction_has_perplexity_vocab_size():
    metric = perplexity_metric()
    metric.update(torch.zeros(2, 5, 7), torch.randint(0, 7, (2, 5)))
    assert metric.compute().item() == pytest_approx(7.0)


def test_split_perplexity_weights_tokens_not_batches():
    # batch 1: one token with p=1/2; batch 2: three tokens with p=1/8 each, one padding.
    batches = [batch([[0]]), batch([[2, 3, 3, IGNORE_INDEX]])]
    expected = math.exp((math.log(2) + 3 * math.log(8)) / 4)  # = 2**2.5
    mean_of_batches = (2 + 8) / 2
    trainer = pl.Trainer(accelerator="cpu", logger=False, enable_progress_bar=False,
                         enable_model_summary=False)
    loader = DataLoader(batches, batch_size=None)
    metrics = trainer.validate(fixed_distribution_task(), dataloaders=loader, verbose=False)
    assert metrics[0]["val_perplexity"] == pytest_approx(expected)
    assert metrics[0]["val_perplexity"] != pytest_approx(mean_of_batches)
    assert metrics[0]["val_bpc"] == pytest_approx(2.5)
    assert bits_per_token(expected) == pytest_approx(2.5)


def pytest_approx(value: float):
    import pytest

    return pytest.approx(value, rel=1e-5)

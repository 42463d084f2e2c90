"""Fixtures of the orchestrator tests that more than one module uses."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from orchestrator.config import OptimConfig, load_config
from orchestrator.lightning_modules.language_model import LanguageModelTask
from orchestrator.lightning_modules.rnn_language_model import RNNLanguageModelConfig
from orchestrator.run_files import CONFIG_KEY
from tests.models import settings


@pytest.fixture
def language_model(tmp_path) -> Path:
    """A checkpoint as a Train run writes it: hyperparameters, weights and the config."""
    module = LanguageModelTask(
        model=settings(RNNLanguageModelConfig, embedding_dim=8, hidden_size=8, num_layers=1),
        optim=OptimConfig().model_dump(), vocab=["<unk>", "a", "b", " "], level="char",
    )
    path = tmp_path / "lm.ckpt"
    torch.save({"state_dict": module.state_dict(), "hyper_parameters": dict(module.hparams),
                CONFIG_KEY: load_config(None).model_dump()}, path)
    return path

"""Model settings for tests that build a module directly: the `model` config section's
defaults (their one home) with the test's own values."""

from __future__ import annotations

from typing import Any

from orchestrator.config import ModelConfig
from orchestrator.worker.tasks import model_settings


def settings(architecture: type, **values: Any) -> dict[str, Any]:
    """What `architecture` (e.g. RNNLanguageModelConfig) takes from ModelConfig(**values)."""
    return model_settings(ModelConfig(**values), architecture)

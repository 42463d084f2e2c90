"""Per-frame CNN features of a clip, the input every video model's RNN reads."""

from __future__ import annotations

import torch
from torch import nn

from orchestrator.lightning_modules.feature_cache import FeatureCache
from orchestrator.lightning_modules.image_encoders import ImageEncoder


def frame_features(encoder: ImageEncoder, cache: FeatureCache | None, to_input: nn.Linear,
                   frames: torch.Tensor) -> torch.Tensor:
    """frames (B, F, 3, H, W) -> (B, F, to_input's size): each frame's feature map pooled
    over positions and projected. A frozen encoder's maps come from `cache` (computed once
    per distinct frame)."""
    batch, count = frames.shape[:2]
    pictures = frames.flatten(0, 1)
    maps = encoder(pictures) if cache is None else cache.encode(encoder, pictures)
    return torch.tanh(to_input(maps.mean(dim=(2, 3)))).view(batch, count, -1)

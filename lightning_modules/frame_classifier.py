"""A label for every frame of a clip (the many-to-many case): per-frame CNN features -> a
(bi-directional) RNN stack over the frames -> a linear layer at every step.

Bi-directional matters here: a frame whose label shows only later in the clip (the
`curtain_shapes` sample's curtain frames) can be labelled by the backward direction only.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from orchestrator.lightning_modules.cells import make_rnn
from orchestrator.lightning_modules.feature_cache import FeatureCache
from orchestrator.lightning_modules.frame_features import frame_features
from orchestrator.lightning_modules.image_encoders import ImageEncoder


@dataclass
class FrameClassifierConfig:
    """Filled from the `model` config section (orchestrator/config.py holds every default
    and every check); the number of classes comes from the dataset."""
    num_classes: int
    cell: str  # rnn, gru or lstm
    hidden_size: int
    num_layers: int
    dropout: float
    bidirectional: bool
    encoder: str  # the per-frame CNN, a key of image_encoders.ENCODERS
    encoder_weights: str | None
    freeze_encoder: bool


class FrameClassifier(nn.Module):
    def __init__(self, config: FrameClassifierConfig):
        super().__init__()
        self.config = config
        self.frame_encoder = ImageEncoder(config.encoder, config.encoder_weights,
                                          config.freeze_encoder)
        self.features = FeatureCache() if config.freeze_encoder else None
        self.to_input = nn.Linear(self.frame_encoder.out_channels, config.hidden_size)
        self.rnn = make_rnn(config.cell, config.hidden_size, config.hidden_size,
                            config.num_layers, config.dropout, config.bidirectional)
        self.dropout = nn.Dropout(config.dropout)
        directions = 2 if config.bidirectional else 1
        self.head = nn.Linear(directions * config.hidden_size, config.num_classes)

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        """frames (B, F, 3, H, W) -> logits (B, F, C), one row of class scores per frame."""
        features = frame_features(self.frame_encoder, self.features, self.to_input, frames)
        outputs, _ = self.rnn(self.dropout(features))  # (B, F, D*H)
        return self.head(self.dropout(outputs))

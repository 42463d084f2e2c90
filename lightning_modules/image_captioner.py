"""CNN encoder + RNN decoder for image captions (Show and Tell; with attention over the
feature map, Show, Attend and Tell, Xu et al. 2015).

The CNN's map (B, C, h, w) becomes a memory of h*w positions projected to the decoder's
size; its mean, projected apart, is the global feature that starts the decoder.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from orchestrator.lightning_modules.caption_decoder import CaptionDecoder
from orchestrator.lightning_modules.feature_cache import FeatureCache
from orchestrator.lightning_modules.image_encoders import ImageEncoder


@dataclass
class ImageCaptionerConfig:
    """Filled from the `model` config section (orchestrator/config.py holds every default
    and every check); the vocabulary sizes come from the dataset."""
    vocab_size: int
    cell: str  # rnn, gru or lstm
    embedding_dim: int
    hidden_size: int
    num_layers: int
    dropout: float
    encoder: str  # a key of image_encoders.ENCODERS
    encoder_weights: str | None  # a local state-dict file for the encoder
    freeze_encoder: bool  # train only the decoder (needs encoder_weights to make sense)
    visual_attention: bool  # soft attention over the feature map's positions
    attention: str  # its score: dot, general or concat
    feature_as: str  # "init_state" or "first_input"


class ImageCaptioner(nn.Module):
    def __init__(self, config: ImageCaptionerConfig):
        super().__init__()
        self.config = config
        self.encoder = ImageEncoder(config.encoder, config.encoder_weights, config.freeze_encoder)
        channels = self.encoder.out_channels
        # A frozen encoder's output depends on the pixels only: computed once per image.
        self.features = FeatureCache() if config.freeze_encoder else None
        # Built only when attention reads it: DDP refuses parameters that get no gradient.
        self.to_memory = nn.Linear(channels, config.hidden_size) if config.visual_attention \
            else None
        self.to_feature = nn.Linear(channels, config.hidden_size)
        self.decoder = CaptionDecoder(
            config.vocab_size, config.cell, config.embedding_dim, config.hidden_size,
            config.num_layers, config.dropout,
            config.attention if config.visual_attention else None, config.feature_as,
        )

    def encode(self, images: torch.Tensor) -> dict[str, Any]:
        """images (B, 3, H, W) -> the decoder's starting state (memory (B, h*w, H))."""
        maps = self.encoder(images) if self.features is None \
            else self.features.encode(self.encoder, images)
        grid = maps.flatten(2).transpose(1, 2)  # (B, h*w, C)
        feature = torch.tanh(self.to_feature(grid.mean(dim=1)))  # (B, H)
        if self.to_memory is None:  # no attention: the decoder never reads its memory
            return self.decoder.start(feature[:, None], feature=feature)
        memory = torch.tanh(self.to_memory(grid))  # (B, h*w, H)
        return self.decoder.start(memory, feature=feature)

    def forward(self, images: torch.Tensor, tgt_in: torch.Tensor) -> torch.Tensor:
        """Teacher forcing: logits (B, T, V)."""
        return self.decoder(self.encode(images), tgt_in)

    def step(self, tokens: torch.Tensor, state: dict[str, Any]) -> Any:
        return self.decoder.step(tokens, state)

    def reorder_state(self, state: dict[str, Any], index: torch.Tensor) -> dict[str, Any]:
        return self.decoder.reorder_state(state, index)

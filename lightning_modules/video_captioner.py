"""S2VT-style video captioning (Venugopalan et al. 2015): per-frame CNN features -> an
encoder RNN over the frames -> a decoder RNN that starts from the encoder's final state.

S2VT reads frames and then writes words with one LSTM stack; here encoder and decoder are
two RNNs of the same shape with the state handed over, which is the same computation
without S2VT's padding inputs, and lets the decoder optionally attend over the frames.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from orchestrator.lightning_modules.caption_decoder import CaptionDecoder
from orchestrator.lightning_modules.cells import make_rnn
from orchestrator.lightning_modules.feature_cache import FeatureCache
from orchestrator.lightning_modules.frame_features import frame_features
from orchestrator.lightning_modules.image_encoders import ImageEncoder


@dataclass
class VideoCaptionerConfig:
    """Filled from the `model` config section (orchestrator/config.py holds every default
    and every check); the vocabulary sizes come from the dataset."""
    vocab_size: int
    cell: str  # rnn, gru or lstm, for both RNNs
    embedding_dim: int
    hidden_size: int
    num_layers: int
    dropout: float
    encoder: str  # the per-frame CNN, a key of image_encoders.ENCODERS
    encoder_weights: str | None
    freeze_encoder: bool
    visual_attention: bool  # attention over the encoder's per-frame outputs
    attention: str


class VideoCaptioner(nn.Module):
    def __init__(self, config: VideoCaptionerConfig):
        super().__init__()
        self.config = config
        self.frame_encoder = ImageEncoder(config.encoder, config.encoder_weights,
                                          config.freeze_encoder)
        # A frozen encoder's output depends on the pixels only: computed once per frame.
        self.features = FeatureCache() if config.freeze_encoder else None
        self.to_input = nn.Linear(self.frame_encoder.out_channels, config.hidden_size)
        self.encoder = make_rnn(config.cell, config.hidden_size, config.hidden_size,
                                config.num_layers, config.dropout)
        self.decoder = CaptionDecoder(
            config.vocab_size, config.cell, config.embedding_dim, config.hidden_size,
            config.num_layers, config.dropout,
            config.attention if config.visual_attention else None, feature_as=None,
        )
        self.dropout = nn.Dropout(config.dropout)

    def encode(self, frames: torch.Tensor) -> dict[str, Any]:
        """frames (B, F, 3, H, W) -> the decoder's starting state (memory (B, F, H))."""
        features = frame_features(self.frame_encoder, self.features, self.to_input, frames)
        outputs, final = self.encoder(self.dropout(features))  # features (B, F, H)
        return self.decoder.start(outputs, hidden=final)  # outputs (B, F, H)

    def forward(self, frames: torch.Tensor, tgt_in: torch.Tensor) -> torch.Tensor:
        """Teacher forcing: logits (B, T, V)."""
        return self.decoder(self.encode(frames), tgt_in)

    def step(self, tokens: torch.Tensor, state: dict[str, Any]) -> Any:
        return self.decoder.step(tokens, state)

    def reorder_state(self, state: dict[str, Any], index: torch.Tensor) -> dict[str, Any]:
        return self.decoder.reorder_state(state, index)

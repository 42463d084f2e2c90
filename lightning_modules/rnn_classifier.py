"""A sentence classifier: embedding -> (bi-directional) RNN stack -> pooling -> linear."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from orchestrator.lightning_modules.cells import make_rnn


@dataclass
class RNNClassifierConfig:
    """Filled from the `model` config section (orchestrator/config.py holds every default
    and every check); the vocabulary sizes come from the dataset."""
    vocab_size: int
    num_classes: int
    cell: str  # rnn, gru or lstm
    embedding_dim: int
    hidden_size: int
    num_layers: int
    dropout: float
    bidirectional: bool
    # "last": final state (of both directions when bi-directional); "max"/"mean" over the
    # valid timesteps of the top layer, padding masked out.
    pooling: str
    # Keep the embedding fixed (pretrained vectors used as they are). A default, unlike the
    # rest, so checkpoints written before the setting existed still load.
    freeze_vectors: bool = False


class RNNClassifier(nn.Module):
    def __init__(self, config: RNNClassifierConfig):
        super().__init__()
        self.config = config
        self.embedding = nn.Embedding(config.vocab_size, config.embedding_dim)
        # Frozen here, not only where vectors are loaded, so a rebuilt module (a checkpoint
        # continued in training) keeps it frozen; no gradient, so no optimiser update.
        self.embedding.weight.requires_grad_(not config.freeze_vectors)
        self.rnn = make_rnn(config.cell, config.embedding_dim, config.hidden_size,
                            config.num_layers, config.dropout, config.bidirectional)
        self.dropout = nn.Dropout(config.dropout)
        directions = 2 if config.bidirectional else 1
        self.head = nn.Linear(directions * config.hidden_size, config.num_classes)

    def forward(self, tokens: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """tokens (B, T), lengths (B,) -> class logits (B, C). Packed, so padding is free."""
        x = self.dropout(self.embedding(tokens))  # (B, T, E)
        packed = pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
        outputs, hidden = self.rnn(packed)
        if self.config.pooling == "last":
            features = self._last_states(hidden)  # (B, D*H)
        else:
            features = self._pool(outputs, lengths)
        return self.head(self.dropout(features))

    def _last_states(self, hidden: torch.Tensor | tuple[torch.Tensor, ...]) -> torch.Tensor:
        h_n = hidden[0] if isinstance(hidden, tuple) else hidden  # (L*D, B, H)
        if self.config.bidirectional:
            # the top layer's forward state (after the last token) and backward state
            # (after reading back to the first token)
            return torch.cat([h_n[-2], h_n[-1]], dim=-1)
        return h_n[-1]

    def _pool(self, packed_outputs: nn.utils.rnn.PackedSequence, lengths: torch.Tensor):
        outputs, _ = pad_packed_sequence(packed_outputs, batch_first=True)  # (B, T, D*H)
        steps = torch.arange(outputs.size(1), device=outputs.device)
        valid = (steps[None, :] < lengths.to(outputs.device)[:, None]).unsqueeze(-1)  # (B,T,1)
        if self.config.pooling == "max":
            return outputs.masked_fill(~valid, float("-inf")).amax(dim=1)
        return (outputs * valid).sum(dim=1) / valid.sum(dim=1)

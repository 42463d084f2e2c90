"""The word decoder shared by the image and video captioners: embedding -> rnn/gru/lstm ->
optional soft attention over a visual memory -> softmax.

The visual input starts the decoder either as its initial state (`init_state`: per-layer
tanh projections of the global feature, as Show, Attend and Tell does) or as its first input
(`first_input`: the feature is fed once before <bos>, as in Show and Tell), or, for video,
as the encoder RNN's final state. Attention is `GlobalAttention` over the memory (the CNN
map's positions, or the frames), applied to the RNN's output as in the translation
decoder, so teacher forcing runs over the whole caption at once.
The search in `decoding.py` drives it through `step` and `reorder_state`.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from orchestrator.lightning_modules.attention import GlobalAttention
from orchestrator.lightning_modules.cells import Hidden, make_rnn
from orchestrator.lightning_modules.decoding import reorder_rnn_state

FEATURE_USES = ("init_state", "first_input")


class CaptionDecoder(nn.Module):
    def __init__(
        self, vocab_size: int, cell: str, embedding_dim: int, hidden_size: int,
        num_layers: int, dropout: float, attention: str | None,
        feature_as: str | None = "init_state",
    ):
        """feature_as None: `start` is always given the hidden state (video)."""
        super().__init__()
        if feature_as is not None and feature_as not in FEATURE_USES:
            raise ValueError(f"feature_as must be one of {', '.join(FEATURE_USES)} "
                             f"(got {feature_as!r})")
        self.cell, self.num_layers, self.feature_as = cell, num_layers, feature_as
        self.embedding = nn.Embedding(vocab_size, embedding_dim)
        self.rnn = make_rnn(cell, embedding_dim, hidden_size, num_layers, dropout)
        self.attention = GlobalAttention(hidden_size, attention) if attention else None
        if feature_as == "init_state":
            states = 2 if cell == "lstm" else 1  # LSTM: separate projections for h and c
            self.init = nn.Linear(hidden_size, states * num_layers * hidden_size)
        elif feature_as == "first_input":
            self.first = nn.Linear(hidden_size, embedding_dim)
        self.dropout = nn.Dropout(dropout)
        self.output = nn.Linear(hidden_size, vocab_size)

    def start(
        self, memory: torch.Tensor, feature: torch.Tensor | None = None,
        hidden: Hidden | None = None,
    ) -> dict[str, Any]:
        """memory (B, S, H) and the global feature (B, H) or a ready hidden state ->
        the decoding state before <bos>."""
        if hidden is None:
            hidden = self._from_feature(feature)
        mask = torch.ones(memory.shape[:2], dtype=torch.bool, device=memory.device)  # (B, S)
        return {"memory": memory, "mask": mask, "hidden": hidden}

    def _from_feature(self, feature: torch.Tensor) -> Hidden:
        batch, layers = feature.size(0), self.num_layers
        if self.feature_as == "first_input":
            _, hidden = self.rnn(self.first(feature)[:, None, :])  # (B, 1, E) in
            return hidden
        states = torch.tanh(self.init(feature)).view(batch, -1, layers, self.rnn.hidden_size)
        states = states.permute(1, 2, 0, 3).contiguous()  # (states, L, B, H)
        return (states[0], states[1]) if self.cell == "lstm" else states[0]

    def forward(self, state: dict[str, Any], tgt_in: torch.Tensor) -> torch.Tensor:
        """Teacher forcing: logits (B, T, V) for every caption position."""
        x = self.dropout(self.embedding(tgt_in))  # (B, T, E)
        out, _ = self.rnn(x, state["hidden"])  # (B, T, H)
        if self.attention is not None:
            out, _ = self.attention(out, state["memory"], state["mask"])
        return self.output(self.dropout(out))

    def step(
        self, tokens: torch.Tensor, state: dict[str, Any]
    ) -> tuple[torch.Tensor, dict[str, Any], torch.Tensor | None]:
        """Search interface: tokens (N,) -> log-probs (N, V), new state, attention (N, S)."""
        x = self.dropout(self.embedding(tokens))[:, None, :]  # (N, 1, E)
        out, hidden = self.rnn(x, state["hidden"])  # (N, 1, H)
        weights = None
        if self.attention is not None:
            out, weights = self.attention(out, state["memory"], state["mask"])
            weights = weights[:, 0]  # (N, S)
        log_probs = torch.log_softmax(self.output(self.dropout(out[:, 0])), dim=-1)
        return log_probs, {**state, "hidden": hidden}, weights

    reorder_state = staticmethod(reorder_rnn_state)  # keep/duplicate hypotheses

"""An RNN encoder-decoder with global attention (Luong et al. 2015).

Encoder: embedding -> (bi-directional) rnn/gru/lstm over packed sequences; its outputs
(both directions joined, hidden_size wide) are the attention memory as they are. Bridge:
the encoder's final states -> the decoder's initial state (tanh layer), used for nothing
else. Decoder: embedding (+ the previous attentional state with input feeding) -> rnn ->
attention -> softmax.
The decoder runs one step at a time for search (`step`, `reorder_state`) and over the
whole target at once for teacher forcing when input feeding is off.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from orchestrator.lightning_modules.attention import GlobalAttention
from orchestrator.lightning_modules.cells import Hidden, make_rnn
from orchestrator.lightning_modules.decoding import reorder_rnn_state
from orchestrator.lightning_modules.output_layer import output_layer


@dataclass
class Seq2SeqConfig:
    """Filled from the `model` config section (orchestrator/config.py holds every default
    and every check); the vocabulary sizes come from the dataset."""
    source_vocab_size: int
    target_vocab_size: int
    cell: str  # rnn, gru or lstm, for encoder and decoder
    embedding_dim: int
    hidden_size: int  # decoder; a bi-directional encoder uses half per direction
    num_layers: int
    dropout: float
    bidirectional: bool  # encoder
    attention: str  # dot, general (Luong) or concat (Bahdanau)
    input_feeding: bool  # feed the previous attentional state to the decoder
    # the softmax shares the target embedding matrix, after a projection to its width when
    # embedding_dim < hidden_size (lightning_modules/output_layer.py)
    tie_weights: bool
    # Uniform init in [-init_range, init_range] for every weight (OpenNMT's 0.1); None keeps
    # torch's, which learn far slower: Multi30k val BLEU after one epoch 10.8 against 23.8
    # (benchmarks/RESULTS.md).
    init_range: float | None
    # One embedding for source and target tokens (a joint vocabulary); a default, so that
    # checkpoints saved before it load.
    share_embeddings: bool = False


class Seq2Seq(nn.Module):
    def __init__(self, config: Seq2SeqConfig):
        super().__init__()
        self.config = config
        per_direction = config.hidden_size // (2 if config.bidirectional else 1)
        self.source_embedding = nn.Embedding(config.source_vocab_size, config.embedding_dim)
        self.encoder = make_rnn(config.cell, config.embedding_dim, per_direction,
                                config.num_layers, config.dropout, config.bidirectional)
        self.bridge = nn.Linear(config.hidden_size, config.hidden_size)
        self.target_embedding = (
            self.source_embedding if config.share_embeddings
            else nn.Embedding(config.target_vocab_size, config.embedding_dim))
        decoder_input = config.embedding_dim + (config.hidden_size if config.input_feeding else 0)
        self.decoder = make_rnn(config.cell, decoder_input, config.hidden_size,
                                config.num_layers, config.dropout)
        self.attention = GlobalAttention(config.hidden_size, config.attention)
        self.dropout = nn.Dropout(config.dropout)
        self.output = output_layer(config.hidden_size, self.target_embedding, config.tie_weights)
        if config.init_range is not None:
            for parameter in self.parameters():
                nn.init.uniform_(parameter, -config.init_range, config.init_range)

    def encode(self, src: torch.Tensor, src_lengths: torch.Tensor) -> dict[str, Any]:
        """src (B, S) -> the decoder's initial state: memory (B, S, H), mask, hidden."""
        x = self.dropout(self.source_embedding(src))  # (B, S, E)
        packed = pack_padded_sequence(x, src_lengths.cpu(), batch_first=True,
                                      enforce_sorted=False)
        outputs, final = self.encoder(packed)
        outputs, _ = pad_packed_sequence(outputs, batch_first=True, total_length=src.size(1))
        # The raw outputs, as in Luong et al.: `general` and `concat` scores project the
        # memory themselves, so a squashing layer (once shared with the bridge) adds nothing.
        memory = outputs  # (B, S, H)
        steps = torch.arange(src.size(1), device=src.device)
        mask = steps[None, :] < src_lengths.to(src.device)[:, None]  # (B, S)
        feed = memory.new_zeros(src.size(0), self.config.hidden_size)
        return {"memory": memory, "mask": mask, "hidden": self._bridge(final), "feed": feed}

    def _bridge(self, final: Hidden) -> Hidden:
        """Encoder final states (L*D, B, h) -> decoder initial states (L, B, H)."""
        if isinstance(final, tuple):
            return tuple(self._bridge_one(part) for part in final)
        return self._bridge_one(final)

    def _bridge_one(self, state: torch.Tensor) -> torch.Tensor:
        layers = self.config.num_layers
        if self.config.bidirectional:  # join each layer's forward and backward states
            state = state.view(layers, 2, state.size(1), state.size(2))
            state = torch.cat([state[:, 0], state[:, 1]], dim=-1)  # (L, B, 2h)
        return torch.tanh(self.bridge(state)).contiguous()

    def forward(self, src: torch.Tensor, src_lengths: torch.Tensor,
                tgt_in: torch.Tensor) -> torch.Tensor:
        """Teacher forcing: logits (B, T, V) for every target position."""
        state = self.encode(src, src_lengths)
        if self.config.input_feeding:
            steps = [self._step_logits(tgt_in[:, t], state)[0] for t in range(tgt_in.size(1))]
            return torch.stack(steps, dim=1)
        x = self.dropout(self.target_embedding(tgt_in))  # (B, T, E)
        out, _ = self.decoder(x, state["hidden"])  # (B, T, H)
        attended, _ = self.attention(out, state["memory"], state["mask"])
        return self.output(self.dropout(attended))

    def _step_logits(
        self, tokens: torch.Tensor, state: dict[str, Any]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """One decoder step for tokens (N,): logits (N, V), attention (N, S); updates state."""
        x = self.dropout(self.target_embedding(tokens))  # (N, E)
        if self.config.input_feeding:
            x = torch.cat([x, state["feed"]], dim=-1)
        out, state["hidden"] = self.decoder(x[:, None, :], state["hidden"])  # (N, 1, H)
        attended, weights = self.attention(out, state["memory"], state["mask"])
        state["feed"] = attended[:, 0]
        return self.output(self.dropout(attended[:, 0])), weights[:, 0]

    def step(
        self, tokens: torch.Tensor, state: dict[str, Any]
    ) -> tuple[torch.Tensor, dict[str, Any], torch.Tensor]:
        """Search interface: log-probs (N, V), the new state, attention (N, S)."""
        state = dict(state)
        logits, weights = self._step_logits(tokens, state)
        return torch.log_softmax(logits, dim=-1), state, weights

    reorder_state = staticmethod(reorder_rnn_state)  # keep/duplicate hypotheses

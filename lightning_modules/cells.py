"""The recurrent cells by name, through torch's fused modules (cuDNN on GPU), and the
hidden-state plumbing that stateful training needs for any of them."""

from __future__ import annotations

import torch
from torch import nn

RNN_CELLS: dict[str, type[nn.RNNBase]] = {"rnn": nn.RNN, "gru": nn.GRU, "lstm": nn.LSTM}

# nn.RNN/nn.GRU carry one tensor (layers, B, H); nn.LSTM carries a tuple (h, c).
Hidden = torch.Tensor | tuple[torch.Tensor, torch.Tensor]


def make_rnn(
    cell: str, input_size: int, hidden_size: int, num_layers: int, dropout: float,
    bidirectional: bool = False,
) -> nn.RNNBase:
    """A batch-first stacked RNN; dropout acts between layers, so only when there are two."""
    return RNN_CELLS[cell](
        input_size,
        hidden_size,
        num_layers=num_layers,
        dropout=dropout if num_layers > 1 else 0.0,
        batch_first=True,
        bidirectional=bidirectional,
    )


def detach_hidden(hidden: Hidden) -> Hidden:
    """Cut the graph between BPTT windows while keeping the values."""
    if isinstance(hidden, tuple):
        return tuple(part.detach() for part in hidden)
    return hidden.detach()


def reset_rows(hidden: Hidden, reset: torch.Tensor) -> Hidden:
    """Zero the state of rows flagged in `reset` (B,), which start a new text."""
    keep = (~reset).to(dtype=_first(hidden).dtype).view(1, -1, 1)  # (1, B, 1)
    if isinstance(hidden, tuple):
        return tuple(part * keep for part in hidden)
    return hidden * keep


def _first(hidden: Hidden) -> torch.Tensor:
    return hidden[0] if isinstance(hidden, tuple) else hidden

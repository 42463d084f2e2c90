"""Turn a stream of token segments into truncated-BPTT windows over parallel rows.

Each of the `batch_size` rows reads one segment to its end before taking the next, so
row i of consecutive windows is consecutive text and a stateful model may carry its
hidden state across them. A row that starts a new segment is flagged in `reset`.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import torch
import torch.utils.data

from orchestrator.datasets.batches import IGNORE_INDEX, LanguageModelBatch


def bptt_windows(
    segments: Iterable[torch.Tensor], batch_size: int, bptt: int
) -> Iterator[LanguageModelBatch]:
    """Yield (B, bptt) windows until every row has run out of segments.

    Windows overlap by one token (the last target of a window is the next window's first
    input), so every token of a segment but its first is predicted exactly once. When
    the source ends, finished rows are padded with IGNORE_INDEX targets.
    """
    worker = torch.utils.data.get_worker_info()
    stream = worker.id if worker is not None else 0
    source = iter(segments)
    rows: list[torch.Tensor | None] = [None] * batch_size
    positions = [0] * batch_size
    exhausted = False
    while True:
        reset = torch.zeros(batch_size, dtype=torch.bool)
        for row in range(batch_size):
            current = rows[row]
            if current is None or len(current) - positions[row] < 2:
                rows[row], exhausted = _next_segment(source, exhausted)
                positions[row] = 0
                reset[row] = True
        if all(row is None for row in rows):
            return
        inputs = torch.zeros(batch_size, bptt, dtype=torch.long)
        targets = torch.full((batch_size, bptt), IGNORE_INDEX, dtype=torch.long)
        for row, segment in enumerate(rows):
            if segment is None:
                continue
            piece = segment[positions[row] : positions[row] + bptt + 1]
            inputs[row, : len(piece) - 1] = piece[:-1]
            targets[row, : len(piece) - 1] = piece[1:]
            positions[row] += len(piece) - 1
        yield LanguageModelBatch(inputs=inputs, targets=targets, reset=reset, stream=stream)


def _next_segment(
    source: Iterator[torch.Tensor], exhausted: bool
) -> tuple[torch.Tensor | None, bool]:
    """The next segment with at least one target, or None once the source is empty."""
    while not exhausted:
        segment = next(source, None)
        if segment is None:
            return None, True
        if len(segment) >= 2:
            return segment, False
    return None, True

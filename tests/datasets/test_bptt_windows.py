"""BPTT windows: rows continue their own segment, resets mark new segments, padding
targets are IGNORE_INDEX."""

from __future__ import annotations

import torch

from orchestrator.datasets.batches import IGNORE_INDEX
from orchestrator.datasets.bptt_windows import bptt_windows


def test_rows_continue_their_segments_across_windows():
    segments = [torch.arange(0, 7), torch.arange(100, 104), torch.tensor([9]),
                torch.arange(200, 203)]
    batches = list(bptt_windows(segments, batch_size=2, bptt=3))
    first, second = batches  # then every row has run out
    assert first["reset"].tolist() == [True, True]
    assert first["inputs"].tolist() == [[0, 1, 2], [100, 101, 102]]
    assert first["targets"].tolist() == [[1, 2, 3], [101, 102, 103]]
    # row 0 continues 0..6; row 1's segment ended, it skips the 1-token one, takes 200..202
    assert second["reset"].tolist() == [False, True]
    assert second["inputs"].tolist() == [[3, 4, 5], [200, 201, 0]]
    assert second["targets"].tolist() == [[4, 5, 6], [201, 202, IGNORE_INDEX]]


def test_every_token_but_each_segment_first_is_a_target_once():
    segments = [torch.arange(n * 10, n * 10 + n + 2) for n in range(6)]
    targets = [
        t for batch in bptt_windows(segments, batch_size=3, bptt=4)
        for t in batch["targets"].flatten().tolist() if t != IGNORE_INDEX
    ]
    expected = [t for segment in segments for t in segment[1:].tolist()]
    assert sorted(targets) == sorted(expected)

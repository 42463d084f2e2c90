"""Beam search one sentence at a time, written as plain loops: the yardstick that the batched
`BeamSearch` must match (same hypotheses, same scores) and beat on speed. Tests and the
benchmark only.

Same rules as orchestrator.lightning_modules.decoding, re-derived here rather than imported:
the top 2k candidates of the live beams; EOS candidates among the first k finish with
score log_prob / penalty(length incl. EOS); the first k others go on; the sentence stops
when its nbest-th finished score >= best live log_prob / penalty(max_length + 1), or when
no beam is live.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch

from orchestrator.lightning_modules.decoding import DecodingConfig, Hypothesis, StepDecoder


@dataclass
class _Beam:
    tokens: list[int]
    log_prob: float
    attention: list[torch.Tensor] = field(default_factory=list)  # one (S,) row per step


def reference_beam_search(
    decoder: StepDecoder, state: Any, config: DecodingConfig, source_length: int | None = None,
    device: torch.device | str = "cpu",
) -> list[Hypothesis]:
    """The nbest hypotheses, best first, for the one sentence whose state has batch 1."""
    k, eos = config.beam_size, config.eos_id
    max_length = config.max_length
    if config.max_length_ratio is not None:
        ratio_cap = math.ceil(config.max_length_ratio * source_length) + config.max_length_offset
        max_length = min(max_length, ratio_cap)
    beams, finished = [_Beam([], 0.0)], []
    for step in range(max_length + 1):
        last = torch.tensor([beam.tokens[-1] if beam.tokens else config.bos_id for beam in beams],
                            device=device)
        log_probs, state, attention = decoder.step(last, state)
        candidates = []  # (score, beam, token)
        for i, beam in enumerate(beams):
            row = _constrain(log_probs[i].float().clone(), beam.tokens, step, max_length, config)
            scores = torch.tensor(beam.log_prob) + row  # float32, like the batched search
            top = scores.topk(min(2 * k, scores.numel()))
            candidates += [(score, i, token) for score, token in
                           zip(top.values.tolist(), top.indices.tolist(), strict=True)
                           if score > -math.inf]
        candidates = sorted(candidates, key=lambda c: -c[0])[:2 * k]
        next_beams, parents = [], []
        for rank, (score, i, token) in enumerate(candidates):
            beam = beams[i]
            rows = beam.attention + ([] if attention is None else [attention[i]])
            if token == eos and rank < k:
                finished.append(_hypothesis(beam.tokens, score, rows, config, source_length))
            elif token != eos and len(next_beams) < k:
                next_beams.append(_Beam(beam.tokens + [token], score, rows))
                parents.append(i)
        finished = sorted(finished, key=lambda h: -h.score)[:config.nbest]
        if not next_beams:
            break
        bound = max(beam.log_prob for beam in next_beams) / _penalty(max_length + 1, config)
        if len(finished) >= config.nbest and finished[-1].score >= bound:
            break
        parents_index = torch.tensor(parents, device=device)
        beams, state = next_beams, decoder.reorder_state(state, parents_index)
    return finished


def reference_batch(
    decoder: StepDecoder, state: Any, config: DecodingConfig, batch_size: int,
    source_lengths: torch.Tensor | None = None, device: torch.device | str = "cpu",
) -> list[list[Hypothesis]]:
    """`reference_beam_search` on each sentence of a batch state, one after another."""
    lengths = [None] * batch_size if source_lengths is None else source_lengths.tolist()
    return [
        reference_beam_search(
            decoder, decoder.reorder_state(state, torch.tensor([b], device=device)), config,
            lengths[b], device)
        for b in range(batch_size)
    ]


def _constrain(
    row: torch.Tensor, tokens: list[int], step: int, max_length: int, config: DecodingConfig
) -> torch.Tensor:
    eos_log_prob = row[config.eos_id].item()
    for banned in (config.pad_id, config.bos_id, *config.banned_ids):
        if banned != config.eos_id:
            row[banned] = -math.inf
    if step < config.min_length:
        row[config.eos_id] = -math.inf
    n = config.no_repeat_ngram_size
    if n > 0:
        prefix = tokens[len(tokens) - n + 1:]
        for start in range(len(tokens) - n + 1):
            if tokens[start:start + n - 1] == prefix:
                row[tokens[start + n - 1]] = -math.inf
    if step >= max_length:
        row[:] = -math.inf
        row[config.eos_id] = eos_log_prob
    return row


def _penalty(length: int, config: DecodingConfig) -> float:
    if config.length_penalty == "average":
        return float(length)
    if config.length_penalty == "gnmt":
        return ((5 + length) / 6) ** config.alpha
    return 1.0


def _hypothesis(
    tokens: list[int], log_prob: float, rows: list[torch.Tensor], config: DecodingConfig,
    source_length: int | None,
) -> Hypothesis:
    attention = torch.stack(rows)[:, :source_length] if rows else None  # (len + 1, S)
    return Hypothesis(tokens, log_prob / _penalty(len(tokens) + 1, config), log_prob, attention)

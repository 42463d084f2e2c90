"""Greedy, sampling and beam search for every generating task, over flat (batch*beam) rows.

A decoder joins by implementing `StepDecoder`: one step of next-token log-probabilities,
and `reorder_state`, which gathers the rows of its state (hidden, encoder outputs, source
mask). The search uses it to expand the batch to k rows per sentence, to follow the beams
that survive a step and to drop finished sentences, so it never looks inside the state.

One loop (`DecodeStrategy.search`) serves every strategy; a strategy only says which
candidates a step proposes. Each step, for B' live sentences with k rows each:
  1. the decoder scores the last tokens; bans are applied (pad, bos, `banned_ids`, EOS
     before min_length, repeated n-grams) and EOS is forced once a row reaches its max length;
  2. the strategy proposes C candidates per sentence (beam: the top 2k of k*V, so that
     hypotheses ending in EOS cannot starve the beam, as in fairseq);
  3. EOS candidates among the first k are finished, with score
     log_prob / penalty(length), where length counts the EOS;
  4. the first k non-EOS candidates go on; the rest of the rows are dead (score -inf).

Stopping rule: a sentence is done when its nbest-th best finished score is >= the best
score any live row could still reach, log_prob / penalty(max_length + 1) (log-probs only
fall and every penalty grows with length), or when no live row is left (EOS is forced at
max length). So stopping early never changes the returned hypotheses. Done sentences leave
the batch at once. With length_penalty "none" this stops as soon as the nbest-th finished
beats every live row; "average" and "gnmt" bounds are looser and search longer.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import torch

from orchestrator.datasets.tokenizer import BOS, EOS, PAD, Tokenizer
from orchestrator.lightning_modules.eval_settings import EvalSettings


class StepDecoder(Protocol):
    def step(
        self, tokens: torch.Tensor, state: Any
    ) -> tuple[torch.Tensor, Any, torch.Tensor | None]:
        """tokens (N,) -> log-probs (N, V), the next state, attention (N, S) or None.
        The search owns the returned log-probs and writes its bans into them."""
        ...

    def reorder_state(self, state: Any, index: torch.Tensor) -> Any:
        """The state of rows `index` (N',), in that order (rows may repeat)."""
        ...


def reorder_rnn_state(state: dict[str, Any], index: torch.Tensor) -> dict[str, Any]:
    """`reorder_state` for the RNN decoders' dict states: rows `index` (N',) of every
    tensor; the "hidden" entry (a tensor or LSTM tuple) is (L, N, H), the rest batch-first."""
    def pick(value: Any, batch_dim: int) -> Any:
        if isinstance(value, tuple):
            return tuple(part.index_select(batch_dim, index) for part in value)
        return value.index_select(batch_dim, index)

    return {key: pick(value, 1 if key == "hidden" else 0) for key, value in state.items()}


# What a finished hypothesis' summed log-prob is divided by; length counts its EOS.
LENGTH_PENALTIES: dict[str, Callable[[torch.Tensor, float], torch.Tensor]] = {
    "none": lambda length, alpha: torch.ones_like(length),
    "average": lambda length, alpha: length,
    "gnmt": lambda length, alpha: ((5 + length) / 6) ** alpha,  # Wu et al. 2016
}


@dataclass
class DecodingConfig:
    bos_id: int
    eos_id: int
    pad_id: int
    max_length: int = 200  # tokens per hypothesis, EOS excluded: the cap for every sentence
    max_length_ratio: float | None = None  # also cap at ceil(ratio * source length) + offset
    max_length_offset: int = 5  # lets very short sources still get a few tokens
    min_length: int = 0  # EOS is banned before this many tokens
    beam_size: int = 5
    nbest: int = 1  # hypotheses per sentence: <= beam_size for beam, the samples for sampling
    length_penalty: str = "none"  # a key of LENGTH_PENALTIES
    alpha: float = 0.6  # the gnmt exponent; 0 is no penalty
    no_repeat_ngram_size: int = 0  # n > 0 bans any token that would repeat an n-gram
    banned_ids: tuple[int, ...] = ()  # never produced, like pad and bos (e.g. the unk token)

    def __post_init__(self) -> None:
        if self.length_penalty not in LENGTH_PENALTIES:
            raise ValueError(f"length_penalty must be one of {', '.join(LENGTH_PENALTIES)}")
        if not 1 <= self.nbest <= self.beam_size:
            raise ValueError("need 1 <= nbest <= beam_size")

    def penalty(self, length: torch.Tensor) -> torch.Tensor:
        return LENGTH_PENALTIES[self.length_penalty](length.float(), self.alpha)

    def max_lengths(self, batch_size: int, source_lengths: torch.Tensor | None) -> list[int]:
        """Each sentence's cap; the ratio cap is computed in Python floats, like a reader would."""
        if self.max_length_ratio is None:
            return [self.max_length] * batch_size
        if source_lengths is None:
            raise ValueError("max_length_ratio needs source_lengths")
        return [
            min(self.max_length, math.ceil(self.max_length_ratio * n) + self.max_length_offset)
            for n in source_lengths.tolist()
        ]


@dataclass
class Hypothesis:
    tokens: list[int]  # without bos and EOS
    score: float  # log_prob / penalty(len(tokens) + 1): what hypotheses are ranked by
    log_prob: float  # the summed log-probability, EOS included
    attention: torch.Tensor | None  # (len(tokens) + 1, S): row i predicted token i (last: EOS)


class DecodeStrategy:
    """The shared loop; subclasses set the rows per sentence and propose candidates."""

    def __init__(self, config: DecodingConfig, beam_size: int):
        self.config = config
        self.k = beam_size
        self.nbest = min(config.nbest, beam_size)

    def initial_scores(self, batch_size: int, device: torch.device) -> torch.Tensor:
        """(B, k) summed log-probs before the first step; -inf rows are dead."""
        return torch.zeros(batch_size, self.k, device=device)

    def candidates(
        self, log_probs: torch.Tensor, scores: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Next-token log_probs (B', k, V), which it may overwrite, and summed scores (B', k)
        -> candidate scores (summed), beams and tokens (B', C), best first for beam; C >= k."""
        raise NotImplementedError

    @torch.no_grad()
    def search(
        self,
        decoder: StepDecoder,
        state: Any,
        batch_size: int,
        source_lengths: torch.Tensor | None = None,
        device: torch.device | str = "cpu",
    ) -> list[list[Hypothesis]]:
        """Decode `batch_size` sentences from `state` (batch B); per sentence, up to nbest
        hypotheses, best first. source_lengths (B,) trims attention and sets length caps."""
        k, device = self.k, torch.device(device)
        caps = self.config.max_lengths(batch_size, source_lengths)
        lengths = None if source_lengths is None else source_lengths.tolist()
        max_lengths = torch.tensor(caps, device=device)  # (B',)
        sentences = torch.arange(batch_size, device=device)  # (B',) input index of each
        state = decoder.reorder_state(state, sentences.repeat_interleave(k))
        tokens = torch.empty(batch_size * k, 0, dtype=torch.long, device=device)  # (N, t)
        attention: torch.Tensor | None = None  # (N, t, S)
        scores = self.initial_scores(batch_size, device)  # (B', k)
        finished: list[list[Hypothesis]] = [[] for _ in range(batch_size)]
        for step in range(max(caps) + 1):
            last = tokens[:, -1] if step else torch.full(
                (tokens.size(0),), self.config.bos_id, device=device)  # (N,)
            log_probs, state, step_attention = decoder.step(last, state)  # (N, V), (N, S)
            if step_attention is not None:
                step_attention = step_attention.unsqueeze(1)  # (N, 1, S)
                attention = step_attention if attention is None else torch.cat(
                    [attention, step_attention], dim=1)  # (N, t + 1, S)
            log_probs = self._constrain(log_probs.float(), tokens, max_lengths.repeat_interleave(k))
            log_probs = log_probs.view(scores.size(0), k, -1)  # (B', k, V)
            cand_scores, cand_beams, cand_tokens = self.candidates(log_probs, scores)  # (B', C)
            offsets = k * torch.arange(scores.size(0), device=device).unsqueeze(1)  # (B', 1)
            parents = cand_beams + offsets  # (B', C) rows of tokens and state
            self._finish(finished, sentences, cand_scores, cand_tokens, parents, tokens,
                         attention, lengths)
            scores, rows, next_tokens = self._select(cand_scores, cand_tokens, parents)  # (B', k)
            keep = (~self._done(finished, sentences, scores, max_lengths)).nonzero().squeeze(1)
            if keep.numel() == 0:
                break
            rows, next_tokens = rows[keep].view(-1), next_tokens[keep].view(-1, 1)  # (N',)
            scores, sentences, max_lengths = scores[keep], sentences[keep], max_lengths[keep]
            tokens = torch.cat([tokens[rows], next_tokens], dim=1)  # (N', t + 1)
            attention = None if attention is None else attention[rows]
            state = decoder.reorder_state(state, rows)
        return finished

    def _constrain(
        self, log_probs: torch.Tensor, tokens: torch.Tensor, max_lengths: torch.Tensor
    ) -> torch.Tensor:
        """Ban pad, bos, banned_ids, early EOS and repeated n-grams; force EOS at max length.
        (N, V)"""
        config, step = self.config, tokens.size(1)
        eos_log_probs = log_probs[:, config.eos_id].clone()  # (N,)
        banned = [i for i in (config.pad_id, config.bos_id, *config.banned_ids)
                  if i != config.eos_id]
        log_probs[:, banned] = -math.inf
        if step < config.min_length:
            log_probs[:, config.eos_id] = -math.inf
        if 0 < config.no_repeat_ngram_size <= step:
            self._block_ngrams(log_probs, tokens)
        at_max = step >= max_lengths  # (N,)
        if at_max.any():
            log_probs[at_max] = -math.inf
            log_probs[at_max, config.eos_id] = eos_log_probs[at_max]
        return log_probs

    def _block_ngrams(self, log_probs: torch.Tensor, tokens: torch.Tensor) -> None:
        """Ban w wherever (last n-1 tokens, w) already occurs in the row's tokens."""
        n, step = self.config.no_repeat_ngram_size, tokens.size(1)
        grams = tokens.unfold(1, n, 1)  # (N, t - n + 1, n)
        prefix = tokens[:, step - n + 1:].unsqueeze(1)  # (N, 1, n - 1)
        rows, starts = (grams[:, :, :-1] == prefix).all(-1).nonzero(as_tuple=True)
        log_probs[rows, grams[rows, starts, -1]] = -math.inf

    def _finish(
        self,
        finished: list[list[Hypothesis]],
        sentences: torch.Tensor,
        cand_scores: torch.Tensor,
        cand_tokens: torch.Tensor,
        parents: torch.Tensor,
        tokens: torch.Tensor,
        attention: torch.Tensor | None,
        lengths: list[int] | None,
    ) -> None:
        """Store EOS candidates among the first k; keep each sentence's nbest best."""
        top = slice(0, self.k)
        ends = (cand_tokens[:, top] == self.config.eos_id) & cand_scores[:, top].isfinite()
        batch, rank = ends.nonzero(as_tuple=True)  # (F,)
        if batch.numel() == 0:
            return
        log_probs = cand_scores[batch, rank]  # (F,)
        length = torch.tensor(tokens.size(1) + 1, device=log_probs.device)
        penalised = log_probs / self.config.penalty(length)  # (F,)
        rows = parents[batch, rank]  # (F,)
        rows_attention = None if attention is None else attention[rows]  # (F, t + 1, S)
        for i, (sentence, hyp_tokens, log_prob, score) in enumerate(zip(
            sentences[batch].tolist(), tokens[rows].tolist(), log_probs.tolist(),
            penalised.tolist(), strict=True,
        )):
            hyp_attention = None
            if rows_attention is not None:
                width = rows_attention.size(-1) if lengths is None else lengths[sentence]
                hyp_attention = rows_attention[i, :, :width].clone()  # (len + 1, S)
            hyps = finished[sentence]
            hyps.append(Hypothesis(hyp_tokens, score, log_prob, hyp_attention))
            hyps.sort(key=lambda hyp: -hyp.score)
            del hyps[self.nbest:]

    def _select(
        self, cand_scores: torch.Tensor, cand_tokens: torch.Tensor, parents: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The first k non-EOS candidates go on (B', k); EOS fills any gap, as a dead row."""
        is_eos = cand_tokens == self.config.eos_id  # (B', C)
        size = cand_scores.size(1)
        order = is_eos.long() * size + torch.arange(size, device=is_eos.device)  # (B', C)
        pick = order.topk(self.k, dim=1, largest=False).indices  # (B', k)
        scores = cand_scores.gather(1, pick).masked_fill(is_eos.gather(1, pick), -math.inf)
        return scores, parents.gather(1, pick), cand_tokens.gather(1, pick)

    def _done(
        self,
        finished: list[list[Hypothesis]],
        sentences: torch.Tensor,
        scores: torch.Tensor,
        max_lengths: torch.Tensor,
    ) -> torch.Tensor:
        """(B',) True where no live row can beat the nbest-th finished score (module doc)."""
        nth = [hyps[self.nbest - 1].score if len(hyps) >= self.nbest else -math.inf
               for hyps in (finished[i] for i in sentences.tolist())]
        bound = scores.max(dim=1).values / self.config.penalty(max_lengths + 1)  # (B',)
        return torch.tensor(nth, device=scores.device) >= bound


class BeamSearch(DecodeStrategy):
    """k = beam_size rows per sentence; only the first starts live, so beams stay distinct."""

    def __init__(self, config: DecodingConfig):
        super().__init__(config, config.beam_size)

    def initial_scores(self, batch_size: int, device: torch.device) -> torch.Tensor:
        scores = torch.full((batch_size, self.k), -math.inf, device=device)  # (B, k)
        scores[:, 0] = 0.0
        return scores

    def candidates(
        self, log_probs: torch.Tensor, scores: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        batch, k, vocab = log_probs.shape
        scores = log_probs.add_(scores.unsqueeze(-1)).view(batch, k * vocab)  # (B', k*V)
        top, index = scores.topk(min(2 * k, k * vocab), dim=1)  # (B', 2k)
        return top, index // vocab, index % vocab


class Sample(DecodeStrategy):
    """nbest independent samples per sentence at `temperature` (0: the most likely token);
    the samples come back ranked by score."""

    def __init__(
        self,
        config: DecodingConfig,
        temperature: float = 1.0,
        generator: torch.Generator | None = None,
        num_samples: int | None = None,
    ):
        super().__init__(config, num_samples or config.nbest)
        self.temperature = temperature
        self.generator = generator

    def candidates(
        self, log_probs: torch.Tensor, scores: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        batch, k, vocab = log_probs.shape
        if self.temperature == 0:
            tokens = log_probs.argmax(dim=-1)  # (B', k)
        else:
            probs = torch.softmax(log_probs.view(-1, vocab) / self.temperature, dim=-1)
            tokens = torch.multinomial(probs, 1, generator=self.generator).view(batch, k)
        beams = torch.arange(k, device=tokens.device).expand(batch, k)  # (B', k)
        chosen = log_probs.gather(2, tokens.unsqueeze(-1)).squeeze(-1)  # (B', k)
        return scores + chosen, beams, tokens


class Greedy(Sample):
    """The most likely token at every step: one hypothesis per sentence."""

    def __init__(self, config: DecodingConfig):
        super().__init__(config, temperature=0.0, num_samples=1)


def best_hypotheses(
    decoder: StepDecoder,
    state: Any,
    batch_size: int,
    settings: EvalSettings,
    vocab: Tokenizer,
    beam_size: int,
    source_lengths: torch.Tensor | None = None,
    device: torch.device | str = "cpu",
) -> list[Hypothesis]:
    """Each sentence's best hypothesis under a generating task's eval settings: greedy for
    beam size 1, beam search otherwise; the max length ratio applies where there are source
    lengths to take it of."""
    config = decoding_config(settings, vocab, beam_size, ratio=source_lengths is not None)
    strategy = Greedy(config) if beam_size == 1 else BeamSearch(config)
    found = strategy.search(decoder, state, batch_size, source_lengths, device)
    return [nbest[0] for nbest in found]


def decoding_config(settings: EvalSettings, vocab: Tokenizer, beam_size: int,
                    ratio: bool = False) -> DecodingConfig:
    """The search settings of a generating task's eval section; the max length ratio
    applies only where there are source lengths to take it of (`ratio`)."""
    return DecodingConfig(
        bos_id=vocab.index[BOS], eos_id=vocab.index[EOS], pad_id=vocab.index[PAD],
        beam_size=beam_size, max_length=settings.max_length,
        max_length_ratio=settings.max_length_ratio if ratio else None,
        length_penalty=settings.length_penalty, alpha=settings.alpha,
        no_repeat_ngram_size=settings.no_repeat_ngram_size,
        banned_ids=(vocab.unk_id,) if settings.ban_unk else (),
    )

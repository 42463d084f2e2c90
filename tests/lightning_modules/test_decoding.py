"""Decoding: hand-set toy probabilities pin beam outputs; on random attention GRUs the batched
beam search returns what the per-sentence reference does, and greedy is beam size 1."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
import torch
from torch import nn

from orchestrator.lightning_modules.decoding import (
    BeamSearch,
    DecodingConfig,
    Greedy,
    Hypothesis,
    Sample,
)
from tests.reference_beam_search import reference_batch

PAD, BOS, EOS, A, B = range(5)


@pytest.fixture(autouse=True)
def one_thread():
    """Tensors here are tiny: more threads only fight the other jobs on the machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


class TableDecoder:
    """log P(next | previous token) from a fixed table; the source plays no part."""

    def __init__(self, table: dict[int, dict[int, float]], vocab_size: int = 5):
        self.log_probs = torch.full((vocab_size, vocab_size), -math.inf)  # (V, V)
        for previous, row in table.items():
            for token, prob in row.items():
                self.log_probs[previous, token] = math.log(prob)

    def step(self, tokens: torch.Tensor, state: torch.Tensor):
        return self.log_probs[tokens].clone(), state, None  # (N, V)

    def reorder_state(self, state: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        return state[index]


# Greedy takes "a" (0.6) but then ends at 0.6 * 0.4 = 0.24; "b" ends at 0.4 * 0.9 = 0.36.
GARDEN_PATH = {
    BOS: {A: 0.6, B: 0.4},
    A: {EOS: 0.4, A: 0.3, B: 0.3},
    B: {EOS: 0.9, A: 0.05, B: 0.05},
}


class AttentionGRU(nn.Module):
    """A random GRU decoder with dot attention over given encoder outputs (masked by length)
    that, like a trained translator, grows likelier to end once it passes the source length.
    State: hidden (N, H), memory (N, S, H), mask (N, S), steps taken (N,)."""

    def __init__(self, vocab_size: int, hidden_size: int, seed: int, eos_slope: float = 1.0):
        super().__init__()
        torch.manual_seed(seed)
        self.embedding = nn.Embedding(vocab_size, hidden_size)
        self.cell = nn.GRUCell(hidden_size, hidden_size)
        self.output = nn.Linear(2 * hidden_size, vocab_size)
        self.eos_slope = eos_slope

    def initial_state(self, memory: torch.Tensor, lengths: torch.Tensor):
        mask = torch.arange(memory.size(1)) < lengths.unsqueeze(1)  # (B, S)
        hidden = (memory * mask.unsqueeze(-1)).sum(1) / lengths.unsqueeze(1)  # (B, H)
        return hidden, memory, mask, torch.zeros(len(lengths))

    def step(self, tokens: torch.Tensor, state):
        hidden, memory, mask, steps = state
        hidden = self.cell(self.embedding(tokens), hidden)  # (N, H)
        scores = (memory @ hidden.unsqueeze(-1)).squeeze(-1)  # (N, S)
        attention = scores.masked_fill(~mask, -math.inf).softmax(-1)  # (N, S)
        context = (attention.unsqueeze(1) @ memory).squeeze(1)  # (N, H)
        logits = self.output(torch.cat([hidden, context], dim=-1))  # (N, V)
        logits[:, EOS] += self.eos_slope * (steps - mask.sum(1))
        return logits.log_softmax(-1), (hidden, memory, mask, steps + 1), attention

    def reorder_state(self, state, index: torch.Tensor):
        return tuple(part.index_select(0, index) for part in state)


def random_batch(batch_size: int = 7, vocab_size: int = 12, seed: int = 0, eos_slope: float = 1.0):
    """A decoder and its batch state for sentences of different source lengths."""
    decoder = AttentionGRU(vocab_size, 16, seed, eos_slope)
    generator = torch.Generator().manual_seed(seed)
    lengths = torch.randint(2, 9, (batch_size,), generator=generator)  # (B,)
    memory = torch.randn(batch_size, int(lengths.max()), 16, generator=generator)  # (B, S, H)
    return decoder, decoder.initial_state(memory, lengths), lengths


CONFIG = DecodingConfig(bos_id=BOS, eos_id=EOS, pad_id=PAD, max_length=12)


def test_beam_finds_what_greedy_misses():
    decoder, state = TableDecoder(GARDEN_PATH), torch.zeros(3)
    config = replace(CONFIG, beam_size=2, nbest=2)
    for hyps in BeamSearch(config).search(decoder, state, batch_size=3):
        assert [h.tokens for h in hyps] == [[B], [A]]
        assert [h.score for h in hyps] == pytest.approx([math.log(0.36), math.log(0.24)])
    greedy = Greedy(config).search(decoder, state, batch_size=3)
    assert [hyps[0].tokens for hyps in greedy] == [[A]] * 3
    assert greedy[0][0].log_prob == pytest.approx(math.log(0.24))


def test_length_penalties_score_by_hand():
    decoder, state = TableDecoder(GARDEN_PATH), torch.zeros(1)
    average = replace(CONFIG, beam_size=2, length_penalty="average")
    gnmt = replace(CONFIG, beam_size=2, length_penalty="gnmt", alpha=0.5)
    [[best]] = BeamSearch(average).search(decoder, state, batch_size=1)
    assert best.score == pytest.approx(math.log(0.36) / 2)  # length 2: "b" and EOS
    [[best]] = BeamSearch(gnmt).search(decoder, state, batch_size=1)
    assert best.score == pytest.approx(math.log(0.36) / (7 / 6) ** 0.5)


SETTINGS = {
    "plain": {},
    "gnmt": {"length_penalty": "gnmt", "alpha": 1.0},
    "average_ngram": {"length_penalty": "average", "no_repeat_ngram_size": 2, "min_length": 2},
    "banned": {"banned_ids": (A, 7)},
}


@pytest.mark.parametrize("setting", SETTINGS)
@pytest.mark.parametrize("beam_size", [1, 2, 5])
def test_batched_beam_matches_reference(beam_size: int, setting: str):
    decoder, state, lengths = random_batch(seed=beam_size)
    config = replace(CONFIG, beam_size=beam_size, nbest=beam_size, **SETTINGS[setting])
    batched = BeamSearch(config).search(decoder, state, 7, lengths)
    reference = reference_batch(decoder, state, config, 7, lengths)
    for ours, theirs in zip(batched, reference, strict=True):
        assert [h.tokens for h in ours] == [h.tokens for h in theirs]
        assert [h.score for h in ours] == pytest.approx([h.score for h in theirs], abs=1e-5)
        for mine, other in zip(ours, theirs, strict=True):
            torch.testing.assert_close(mine.attention, other.attention)


def test_random_batches_end_at_different_lengths():
    """Guards the test above: its sentences must finish early, at different steps."""
    decoder, state, lengths = random_batch(seed=2)
    hyps = BeamSearch(replace(CONFIG, beam_size=2)).search(decoder, state, 7, lengths)
    assert len({len(h[0].tokens) for h in hyps}) > 2
    assert all(len(h[0].tokens) < CONFIG.max_length for h in hyps)


@pytest.mark.parametrize("setting", SETTINGS)
def test_beam_size_one_is_greedy(setting: str):
    decoder, state, lengths = random_batch(seed=3)
    config = replace(CONFIG, beam_size=1, **{**SETTINGS[setting], "length_penalty": "none"})
    beam = BeamSearch(config).search(decoder, state, 7, lengths)
    greedy = Greedy(config).search(decoder, state, 7, lengths)
    assert [h[0].tokens for h in beam] == [h[0].tokens for h in greedy]
    assert [h[0].log_prob for h in beam] == pytest.approx([h[0].log_prob for h in greedy])


def test_attention_has_a_row_per_token_and_eos_over_the_source():
    decoder, state, lengths = random_batch(seed=4)
    hyps = BeamSearch(replace(CONFIG, beam_size=3, nbest=3)).search(decoder, state, 7, lengths)
    for sentence, length in zip(hyps, lengths.tolist(), strict=True):
        for hyp in sentence:
            assert hyp.attention.shape == (len(hyp.tokens) + 1, length)
            torch.testing.assert_close(hyp.attention.sum(-1), torch.ones(len(hyp.tokens) + 1))


def test_nbest_is_sorted_and_distinct():
    decoder, state, lengths = random_batch(seed=5)
    hyps = BeamSearch(replace(CONFIG, beam_size=5, nbest=4)).search(decoder, state, 7, lengths)
    for sentence in hyps:
        scores = [h.score for h in sentence]
        assert len(sentence) == 4 and scores == sorted(scores, reverse=True)
        assert len({tuple(h.tokens) for h in sentence}) == 4


def test_max_length_ratio_caps_each_sentence():
    decoder, state, lengths = random_batch(seed=6)
    config = replace(CONFIG, beam_size=2, max_length=6, max_length_ratio=0.5,
                     max_length_offset=1, min_length=99)  # EOS only where forced
    hyps = BeamSearch(config).search(decoder, state, 7, lengths)
    caps = [min(6, math.ceil(0.5 * n) + 1) for n in lengths.tolist()]
    assert [len(h[0].tokens) for h in hyps] == caps
    assert len(set(caps)) > 1


def test_banned_ids_never_appear_and_greedy_takes_the_next_best():
    decoder, state = TableDecoder(GARDEN_PATH), torch.zeros(1)
    config = replace(CONFIG, banned_ids=(A,))
    [[greedy]] = Greedy(config).search(decoder, state, batch_size=1)
    assert greedy.tokens == [B]  # "a" (0.6) banned: "b" (0.4), then EOS (0.9)
    assert greedy.log_prob == pytest.approx(math.log(0.4 * 0.9))
    decoder, state, lengths = random_batch(seed=8)
    unbanned = BeamSearch(replace(CONFIG, beam_size=3, nbest=3)).search(decoder, state, 7, lengths)
    assert any(7 in hyp.tokens for sentence in unbanned for hyp in sentence)  # guards the test
    banned = BeamSearch(replace(CONFIG, beam_size=3, nbest=3, banned_ids=(7,))).search(
        decoder, state, 7, lengths)
    assert not any(7 in hyp.tokens for sentence in banned for hyp in sentence)


def test_no_repeat_ngram_leaves_no_repeated_bigram():
    decoder, state, lengths = random_batch(seed=7)
    config = replace(CONFIG, beam_size=3, nbest=3, no_repeat_ngram_size=2, min_length=99)
    for sentence in BeamSearch(config).search(decoder, state, 7, lengths):
        for hyp in sentence:
            bigrams = list(zip(hyp.tokens, hyp.tokens[1:], strict=False))
            assert len(bigrams) == len(set(bigrams)) == CONFIG.max_length - 1


def test_finished_sentences_leave_the_batch():
    decoder, state, lengths = random_batch(seed=2)
    rows = []

    class Recording:
        def step(self, tokens, state):
            rows.append(tokens.numel())
            return decoder.step(tokens, state)

        reorder_state = staticmethod(decoder.reorder_state)

    BeamSearch(replace(CONFIG, beam_size=2)).search(Recording(), state, 7, lengths)
    assert rows[0] == 14 and rows == sorted(rows, reverse=True) and rows[-1] < 14
    assert all(n % 2 == 0 for n in rows)


def test_sampling_near_zero_temperature_is_greedy_and_seeds_repeat():
    decoder, state, lengths = random_batch(seed=8)
    greedy = Greedy(CONFIG).search(decoder, state, 7, lengths)
    cold = Sample(CONFIG, temperature=1e-4).search(decoder, state, 7, lengths)
    assert [h[0].tokens for h in cold] == [h[0].tokens for h in greedy]

    def draw(seed: int) -> list[list[Hypothesis]]:
        config = replace(CONFIG, beam_size=4, nbest=4)
        sampler = Sample(config, generator=torch.Generator().manual_seed(seed))
        return sampler.search(decoder, state, 7, lengths)

    first, again, other = draw(0), draw(0), draw(1)
    tokens = [[h.tokens for h in hyps] for hyps in first]
    assert tokens == [[h.tokens for h in hyps] for hyps in again]
    assert tokens != [[h.tokens for h in hyps] for hyps in other]
    assert all(len(hyps) == 4 for hyps in first)

"""replace_unk: the search keeps each step's attention, and every <unk> a decoder writes
becomes the source token that step attended to most."""

from __future__ import annotations

import math

import torch

from orchestrator.lightning_modules.decoding import BeamSearch, DecodingConfig, Greedy
from orchestrator.lightning_modules.unk_replacement import replace_unknown

VOCAB = ["<unk>", "<eos>", "<pad>", "<bos>", "the", "visits"]
UNK, EOS, PAD, BOS, THE, VISITS = range(len(VOCAB))
SOURCE = ["Frau", "Okonkwo", "besucht", "Reykjavík"]  # neither name is in VOCAB


class AttendingTableDecoder:
    """Writes "<unk> visits <unk> <eos>" (each step's token from a table by step number)
    while attending, by hand, to source position ATTENDED[step]: the name being written."""

    ATTENDED = [1, 2, 3, 0]
    WRITES = [UNK, VISITS, UNK, EOS]

    def step(self, tokens: torch.Tensor, steps: torch.Tensor):
        log_probs = torch.full((tokens.size(0), len(VOCAB)), math.log(0.01))
        attention = torch.full((tokens.size(0), len(SOURCE)), 0.1)
        for row, step in enumerate(steps.tolist()):
            log_probs[row, self.WRITES[step]] = math.log(0.9)
            attention[row, self.ATTENDED[step]] = 0.7
        return log_probs.log_softmax(-1), steps + 1, attention

    def reorder_state(self, steps: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        return steps[index]


def test_each_unk_copies_the_source_word_its_step_attended_to():
    config = DecodingConfig(bos_id=BOS, eos_id=EOS, pad_id=PAD, beam_size=3, max_length=6)
    for strategy in (Greedy(config), BeamSearch(config)):
        best = strategy.search(AttendingTableDecoder(), torch.zeros(1, dtype=torch.long), 1,
                               source_lengths=torch.tensor([len(SOURCE)]))[0][0]
        tokens = [VOCAB[i] for i in best.tokens]
        assert tokens == ["<unk>", "visits", "<unk>"]
        assert replace_unknown(tokens, best.attention, SOURCE) == [
            "Okonkwo", "visits", "Reykjavík"]


def test_without_attention_or_unk_the_tokens_stay():
    tokens = ["a", "<unk>"]
    assert replace_unknown(tokens, None, SOURCE) == tokens
    assert replace_unknown(["a", "b"], torch.ones(3, 4), SOURCE) == ["a", "b"]


def test_attention_beyond_the_source_tokens_is_not_followed():
    """A source cut to fewer tokens than the attention's width (padding) copies in range."""
    attention = torch.tensor([[0.1, 0.2, 0.7], [0.0, 0.0, 1.0]])
    assert replace_unknown(["<unk>"], attention, ["eins", "zwei"]) == ["zwei"]

"""Ensembles: the search averages the members' probabilities (a hand-computed beam over two
table decoders), a model with itself decodes as the model alone, and members of another
vocabulary are refused."""

from __future__ import annotations

import math

import pytest
import torch

from orchestrator.config import EvalConfig, OptimConfig
from orchestrator.errors import OrchestratorError
from orchestrator.lightning_modules.decoding import BeamSearch, DecodingConfig
from orchestrator.lightning_modules.ensemble import Ensemble
from orchestrator.lightning_modules.seq2seq import Seq2Seq, Seq2SeqConfig
from orchestrator.lightning_modules.translation import TranslationTask
from orchestrator.worker.tasks import join_ensemble
from tests.models import settings

EOS, PAD, BOS, A, B = range(5)


class TableDecoder(torch.nn.Module):
    """First token A or B with the given probabilities, then EOS for certain; the state
    counts steps."""

    def __init__(self, p_a: float, p_b: float):
        super().__init__()
        self.first = torch.full((5,), 1e-9)
        self.first[A], self.first[B] = p_a, p_b

    def encode(self, inputs: torch.Tensor) -> torch.Tensor:
        return torch.zeros(inputs.size(0), dtype=torch.long)

    def step(self, tokens: torch.Tensor, steps: torch.Tensor):
        probabilities = torch.full((tokens.size(0), 5), 1e-9)
        probabilities[:, EOS] = 1.0
        probabilities[steps == 0] = self.first
        return probabilities.log(), steps + 1, None

    def reorder_state(self, steps: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        return steps[index]


def test_the_beam_follows_the_mean_probability_of_the_members():
    # A alone: 0.7 and 0.2, mean 0.45; B: 0.3 and 0.8, mean 0.55. The mean of the
    # log-probabilities would give B exp(mean log) = 0.49 before renormalising, not 0.55.
    ensemble = Ensemble([TableDecoder(0.7, 0.3), TableDecoder(0.2, 0.8)])
    config = DecodingConfig(bos_id=BOS, eos_id=EOS, pad_id=PAD, beam_size=2, nbest=2,
                            max_length=4)
    inputs = torch.zeros(1, 1)
    [found] = BeamSearch(config).search(ensemble, ensemble.encode(inputs), 1)
    assert [h.tokens for h in found] == [[B], [A]]
    assert [h.log_prob for h in found] == pytest.approx([math.log(0.55), math.log(0.45)],
                                                        abs=1e-6)
    for member, best in ((TableDecoder(0.7, 0.3), [A]), (TableDecoder(0.2, 0.8), [B])):
        assert BeamSearch(config).search(member, member.encode(inputs), 1)[0][0].tokens == best


def test_a_model_with_itself_decodes_as_the_model_alone():
    torch.manual_seed(0)
    model = Seq2Seq(Seq2SeqConfig(source_vocab_size=30, target_vocab_size=20, **settings(
        Seq2SeqConfig, embedding_dim=8, hidden_size=16))).eval()
    src, lengths = torch.randint(5, 30, (4, 6)), torch.tensor([6, 5, 3, 2])
    config = DecodingConfig(bos_id=3, eos_id=1, pad_id=2, beam_size=3, max_length=8)
    alone = BeamSearch(config).search(model, model.encode(src, lengths), 4)
    pair = Ensemble([model, model])
    together = BeamSearch(config).search(pair, pair.encode(src, lengths), 4)
    for single, ensembled in zip(alone, together, strict=True):
        assert single[0].tokens == ensembled[0].tokens
        assert single[0].score == pytest.approx(ensembled[0].score, abs=1e-5)
        assert torch.allclose(single[0].attention, ensembled[0].attention)


def _translator(target_vocab: list[str]) -> TranslationTask:
    return TranslationTask(
        model=settings(Seq2SeqConfig, embedding_dim=8, hidden_size=16),
        optim=OptimConfig().model_dump(),
        eval_settings=EvalConfig().model_dump(),
        source_vocab=["<unk>", "<eos>", "<pad>", "<bos>", "ein"],
        target_vocab=target_vocab, text={"src": "de", "tgt": "en"}, label_smoothing=0.0)


def test_a_member_of_another_vocabulary_is_refused_naming_it():
    words = ["<unk>", "<eos>", "<pad>", "<bos>", "one", "two"]
    first, same = _translator(words), _translator(words)
    joined = join_ensemble([first, same], ["a.ckpt", "b.ckpt"])
    assert isinstance(joined.model, Ensemble) and len(joined.model.members) == 2
    other = _translator([*words[:4], "two", "one"])
    with pytest.raises(OrchestratorError, match="checkpoint c.ckpt cannot join an ensemble "
                                                "with a.ckpt: its target_vocab differs"):
        join_ensemble([_translator(words), other], ["a.ckpt", "c.ckpt"])

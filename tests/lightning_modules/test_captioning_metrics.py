"""Caption metrics: the project's BLEU and CIDEr-D are pycocoevalcap's on the same captions,
with the PTB tokenizer (Java) or, without Java, the documented fallback, said once."""

from __future__ import annotations

import logging
import random

import pytest
from pycocoevalcap.bleu.bleu import Bleu
from pycocoevalcap.cider.cider import Cider
from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

from orchestrator.datasets.caption_text import caption_words
from orchestrator.datasets.synthetic_captions import shape_image
from orchestrator.lightning_modules import metrics


def captions(count: int = 40) -> tuple[dict[str, str], dict[str, list[str]]]:
    """References of generated images; hypotheses: a reference, half with a wrong word,
    with the punctuation and case that tokenizers must handle."""
    rng = random.Random(5)
    hypotheses, references = {}, {}
    for number in range(count):
        _, refs = shape_image(rng)
        references[str(number)] = [refs[0].capitalize() + ".", refs[1], refs[2] + " !"]
        guess = refs[rng.randrange(3)]
        if number % 2:
            guess = guess.replace("red", "blue").replace("circle", "square")
        hypotheses[str(number)] = guess.upper() if number % 5 == 0 else guess
    return hypotheses, references


def direct_scores(refs: dict[str, list[str]], hyps: dict[str, list[str]]) -> dict[str, float]:
    bleu, _ = Bleu(4).compute_score(refs, hyps, verbose=0)
    cider, _ = Cider().compute_score(refs, hyps)
    return {**{f"bleu_{n}": b for n, b in enumerate(bleu, start=1)}, "cider_d": cider}


@pytest.mark.skipif(not metrics.java_available(), reason="the PTB tokenizer needs Java")
def test_scores_equal_pycocoevalcap_with_the_ptb_tokenizer():
    hypotheses, references = captions()
    ours = metrics.caption_scores(hypotheses, references, meteor=False)
    tokenizer = PTBTokenizer()
    refs = tokenizer.tokenize({k: [{"caption": c} for c in v] for k, v in references.items()})
    hyps = tokenizer.tokenize({k: [{"caption": v}] for k, v in hypotheses.items()})
    assert ours == direct_scores(refs, hyps)
    assert 1.0 < ours["cider_d"] < 10.0 and 0 < ours["bleu_4"] < 1


def test_without_java_the_fallback_tokenizer_is_used_and_said_once(monkeypatch, caplog):
    monkeypatch.setattr(metrics.shutil, "which", lambda name: None)
    metrics._say_no_java.cache_clear()
    hypotheses, references = captions()
    with caplog.at_level(logging.WARNING):
        first = metrics.caption_scores(hypotheses, references)
        second = metrics.caption_scores(hypotheses, references)
    assert first == second and "meteor" not in first
    warnings = [r for r in caplog.records if "java not found" in r.getMessage()]
    assert len(warnings) == 1 and "caption_words" in warnings[0].getMessage()
    assert metrics.caption_tokenizer() == metrics.FALLBACK_TOKENIZER
    refs = {k: [" ".join(caption_words(c)) for c in v] for k, v in references.items()}
    hyps = {k: [" ".join(caption_words(v))] for k, v in hypotheses.items()}
    assert first == direct_scores(refs, hyps)


def test_cider_d_document_frequencies_come_from_the_whole_split(monkeypatch):
    monkeypatch.setattr(metrics.shutil, "which", lambda name: None)
    hypotheses, references = captions()
    alone = metrics.caption_scores({"0": hypotheses["0"]}, {"0": references["0"]})
    assert alone["cider_d"] == 0.0  # one image: every n-gram is in every "document"
    assert metrics.caption_scores(hypotheses, references)["cider_d"] > 1.0

"""Sample corpora the project generates, so the first run and the tests need no download.

`markov` has a known entropy rate (ln 2 nats per character: perplexity 2), so a test can
check that a model reaches it; `grammar` reads like English, so generated samples show
at a glance whether a model learned something.
"""

from __future__ import annotations

import math
import random

MARKOV_ALPHABET = "abcdefgh"
MARKOV_PERPLEXITY = 2.0  # every next character is one of two, equally likely

_DETERMINERS = ["the", "a", "every", "one", "that"]
_ADJECTIVES = ["quick", "lazy", "old", "young", "small", "bright", "quiet", "brave", "green"]
_NOUNS = ["fox", "dog", "king", "river", "sailor", "garden", "city", "horse", "queen", "ship"]
_VERBS = ["sees", "follows", "loves", "finds", "guards", "watches", "crosses", "remembers"]
_PREPOSITIONS = ["near", "behind", "beyond", "under", "across", "beside"]


def markov_text(num_chars: int, seed: int = 0) -> str:
    """A first-order chain over 8 letters: from letter k, the next is k+1 or k+3 (mod 8)."""
    rng = random.Random(seed)
    state = 0
    out = []
    for _ in range(num_chars):
        out.append(MARKOV_ALPHABET[state])
        state = (state + rng.choice((1, 3))) % len(MARKOV_ALPHABET)
    return "".join(out)


def grammar_text(num_chars: int, seed: int = 0) -> str:
    """Sentences from a tiny English grammar, one per line, about `num_chars` long."""
    rng = random.Random(seed)
    lines: list[str] = []
    size = 0
    while size < num_chars:
        line = _sentence(rng)
        lines.append(line)
        size += len(line) + 1
    return "\n".join(lines) + "\n"


def _noun_phrase(rng: random.Random) -> str:
    words = [rng.choice(_DETERMINERS)]
    if rng.random() < 0.6:
        words.append(rng.choice(_ADJECTIVES))
    words.append(rng.choice(_NOUNS))
    return " ".join(words)


def _sentence(rng: random.Random) -> str:
    parts = [_noun_phrase(rng), rng.choice(_VERBS), _noun_phrase(rng)]
    if rng.random() < 0.5:
        parts += [rng.choice(_PREPOSITIONS), _noun_phrase(rng)]
    return " ".join(parts) + "."


SAMPLE_CORPORA = {"markov": markov_text, "grammar": grammar_text}


def markov_entropy_nats() -> float:
    return math.log(MARKOV_PERPLEXITY)

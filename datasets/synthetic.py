"""Sample data the project generates, so the first run and the tests need no download.

`markov` has a known entropy rate (ln 2 nats per character: perplexity 2), so a test can
check that a model reaches it; `grammar` reads like English, so generated samples show
at a glance whether a model learned something; `first_word` labels sentences by their
first word, so direction matters to a classifier; `dates` rewrites dates, so a translation
model must learn an alignment.
"""

from __future__ import annotations

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


_POSITIVE_MARKERS = ["splendid", "superb", "lovely", "wonderful"]
_NEGATIVE_MARKERS = ["dreadful", "awful", "dismal", "terrible"]
_FILLERS = ["the", "film", "a", "story", "of", "and", "it", "was", "with", "scene", "actor",
            "plot", "in", "some", "very", "long", "this", "that", "movie", "music"]


def first_word_examples(
    count: int, min_words: int = 20, max_words: int = 40, seed: int = 0
) -> list[tuple[str, str]]:
    """(label, sentence) pairs whose label is decided by the first word alone; the rest is
    neutral filler. A model must carry one word across the whole sentence: easy read
    backwards (bi-directional), hard for a plain left-to-right RNN's last state."""
    rng = random.Random(seed)
    examples = []
    for _ in range(count):
        label = rng.choice(("negative", "positive"))
        marker = rng.choice(_POSITIVE_MARKERS if label == "positive" else _NEGATIVE_MARKERS)
        filler = rng.choices(_FILLERS, k=rng.randint(min_words, max_words) - 1)
        examples.append((label, " ".join([marker, *filler])))
    return examples


_MONTHS = ["january", "february", "march", "april", "may", "june", "july", "august",
           "september", "october", "november", "december"]


def date_pairs(count: int, seed: int = 0) -> list[tuple[str, str]]:
    """(source, target) date rewrites, "17 march 2024" -> "2024 - 03 - 17": the model must
    reorder (day and year swap places) and map month names to numbers, so attention has
    to find the right source word for each output word."""
    rng = random.Random(seed)
    pairs = []
    for _ in range(count):
        day, month, year = rng.randint(1, 28), rng.randint(1, 12), rng.randint(1950, 2049)
        pairs.append((f"{day} {_MONTHS[month - 1]} {year}", f"{year} - {month:02d} - {day:02d}"))
    return pairs

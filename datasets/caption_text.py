"""How captions become words: lower-cased Moses tokens with PTB's punctuation removed.

These words are the captioning models' vocabulary, and the metrics' documented fallback for
coco-caption's PTB tokenizer where Java is missing. The punctuation list is pycocoevalcap's
own, so the fallback differs from PTB only in how Moses splits words (`don't` -> `don 't`
where PTB gives `do n't`).
"""

from __future__ import annotations

from functools import cache

from pycocoevalcap.tokenizer.ptbtokenizer import PUNCTUATIONS
from sacremoses import MosesTokenizer

_DROPPED = frozenset(PUNCTUATIONS)


@cache
def _moses() -> MosesTokenizer:
    return MosesTokenizer(lang="en")


def caption_words(caption: str) -> list[str]:
    """'A dog, running.' -> ['a', 'dog', 'running']."""
    tokens = _moses().tokenize(caption.lower().strip(), escape=False)
    return [token for token in tokens if token not in _DROPPED]

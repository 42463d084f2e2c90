"""Moses tokenisation and detokenisation (sacremoses), per language.

Shards keep raw sentences; models see Moses tokens; BLEU compares detokenised output with
the raw references, so scores are comparable with sacrebleu's published numbers.
"""

from __future__ import annotations

from functools import cached_property

from sacremoses import MosesDetokenizer, MosesTokenizer


class MosesText:
    def __init__(self, lang: str, lowercase: bool = False):
        self.lang = lang
        self.lowercase = lowercase

    @cached_property
    def _tokenizer(self) -> MosesTokenizer:
        return MosesTokenizer(lang=self.lang)

    @cached_property
    def _detokenizer(self) -> MosesDetokenizer:
        return MosesDetokenizer(lang=self.lang)

    def tokenize(self, sentence: str) -> str:
        """Space-separated Moses tokens, special characters left unescaped."""
        text = sentence.lower() if self.lowercase else sentence
        return self._tokenizer.tokenize(text.strip(), escape=False, return_str=True)

    def detokenize(self, tokens: list[str]) -> str:
        return self._detokenizer.detokenize(tokens)

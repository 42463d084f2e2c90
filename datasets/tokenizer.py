"""Character- and word-level tokenizers with a vocabulary built from the training split."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Literal

Level = Literal["char", "word"]
UNK = "<unk>"
EOS = "<eos>"  # word level only: the end of a line, so line structure survives tokenisation
PAD = "<pad>"  # sequence-to-sequence only: fills batches after each sentence's end
BOS = "<bos>"  # sequence-to-sequence only: the decoder's first input


class Tokenizer:
    """Maps text to token ids and back. Char level keeps every character (newlines
    included); word level splits on whitespace and ends every line with `<eos>`."""

    def __init__(self, level: Level, tokens: list[str]):
        self.level = level
        self.tokens = tokens
        self.index = {token: i for i, token in enumerate(tokens)}
        self.unk_id = self.index[UNK]

    @classmethod
    def build(
        cls, level: Level, texts: Iterable[str], min_freq: int = 1, max_size: int | None = None,
        sequence_specials: bool = False,
    ) -> Tokenizer:
        """Vocabulary of the tokens seen at least `min_freq` times, most frequent first.
        `sequence_specials` adds <pad> and <bos> for sequence-to-sequence models."""
        counts = Counter(token for text in texts for token in split_tokens(level, text))
        specials = [UNK] if level == "char" else [UNK, EOS]
        if sequence_specials:
            specials += [PAD, BOS]
        for special in specials:
            counts.pop(special, None)
        ranked = sorted(
            (token for token, count in counts.items() if count >= min_freq),
            key=lambda token: (-counts[token], token),
        )
        if max_size is not None:
            ranked = ranked[: max(0, max_size - len(specials))]
        return cls(level, specials + ranked)

    def encode(self, text: str) -> list[int]:
        return [self.index.get(token, self.unk_id) for token in split_tokens(self.level, text)]

    def decode(self, ids: Iterable[int]) -> str:
        tokens = [self.tokens[i] for i in ids]
        if self.level == "char":
            return "".join(tokens)
        lines = " ".join(tokens).split(EOS)
        return "\n".join(line.strip() for line in lines)

    def __len__(self) -> int:
        return len(self.tokens)

    def save(self, path: Path) -> None:
        data = {"level": self.level, "tokens": self.tokens}
        path.write_text(json.dumps(data, ensure_ascii=False))

    @classmethod
    def from_json(cls, text: str) -> Tokenizer:
        data = json.loads(text)
        return cls(data["level"], data["tokens"])


def split_tokens(level: Level, text: str) -> list[str]:
    """Char: every character. Word: whitespace-split words, `<eos>` for every newline."""
    if level == "char":
        return list(text)
    lines = text.split("\n")
    tokens: list[str] = []
    for number, line in enumerate(lines):
        tokens.extend(line.split())
        if number < len(lines) - 1:
            tokens.append(EOS)
    return tokens

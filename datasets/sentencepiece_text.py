"""Subword text through the `sentencepiece` library (BPE or unigram), per language side.

Same interface as MosesText: `tokenize` gives space-separated pieces (pieces never hold a
space), `detokenize` joins pieces back into text. Piece ids 0-3 are <unk>, <eos>, <pad>,
<bos>, the order of the project's own vocabularies, so piece ids and vocabulary ids agree.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterable

import sentencepiece as spm

from orchestrator.datasets.tokenizer import BOS, EOS, PAD, UNK


class SentencePieceText:
    def __init__(self, model: bytes, lowercase: bool = False):
        self._processor = spm.SentencePieceProcessor(model_proto=model)
        self.lowercase = lowercase

    def tokenize(self, sentence: str) -> str:
        text = sentence.lower() if self.lowercase else sentence
        return " ".join(self._processor.encode(text.strip(), out_type=str))

    def detokenize(self, tokens: list[str]) -> str:
        return self._processor.decode_pieces(tokens)

    def pieces(self) -> list[str]:
        """Every piece, in id order: the vocabulary."""
        return [self._processor.id_to_piece(i) for i in range(self._processor.get_piece_size())]


def train_sentencepiece(sentences: Iterable[str], model_type: str, vocab_size: int) -> bytes:
    """A serialized sentencepiece model trained on `sentences`. With byte fallback a
    character the training text never held is spelled as its UTF-8 bytes, not <unk>, so
    every sentence round-trips and no name is out of reach; the 256 byte pieces count
    towards `vocab_size`."""
    model = io.BytesIO()
    try:
        spm.SentencePieceTrainer.train(
            sentence_iterator=iter(sentences), model_writer=model, model_type=model_type,
            vocab_size=vocab_size, hard_vocab_limit=False, character_coverage=1.0,
            byte_fallback=True, unk_id=0, eos_id=1, pad_id=2, bos_id=3,
            unk_piece=UNK, eos_piece=EOS, pad_piece=PAD, bos_piece=BOS,
            minloglevel=2,
        )
    except RuntimeError as exc:
        needed = re.search(r"smaller than required_chars\. \d+ vs (\d+)", str(exc))
        if needed is None:
            raise
        raise ValueError(f"--subword-vocab-size {vocab_size} is below the {needed[1]} pieces "
                         "that the text's characters and the 256 byte pieces need") from None
    return model.getvalue()

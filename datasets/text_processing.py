"""How a translation dataset turns raw sentences into tokens and back, per its manifest:
Moses words (`tokenizer: moses`) or sentencepiece subwords (`tokenizer: sentencepiece`)."""

from __future__ import annotations

from orchestrator.datasets.moses_text import MosesText
from orchestrator.datasets.sentencepiece_text import SentencePieceText

TextProcessor = MosesText | SentencePieceText


def text_processors(
    text: dict[str, str], models: dict[str, bytes]
) -> tuple[TextProcessor, TextProcessor]:
    """(source, target) processors; `models` holds the sentencepiece models by side."""
    lowercase = text.get("lowercase") == "true"
    if text.get("tokenizer") == "sentencepiece":
        return (SentencePieceText(models["src"], lowercase),
                SentencePieceText(models["tgt"], lowercase))
    return MosesText(text["src"], lowercase), MosesText(text["tgt"], lowercase)


def subword_models(text: dict[str, str], read_binary) -> dict[str, bytes]:
    """The sentencepiece model files a manifest names, read with `read_binary(name)`."""
    return {side: read_binary(text[f"{side}_model"]) for side in ("src", "tgt")
            if f"{side}_model" in text}

"""The one metrics module: every task's scores come from well-kept libraries, here.

Perplexity is exp of the token-weighted mean cross-entropy over the whole split
(torchmetrics sums log-probabilities and token counts across batches and ranks), never a
mean of per-batch perplexities.
"""

from __future__ import annotations

import logging
import math
import shutil
from functools import cache

from pycocoevalcap.bleu.bleu import Bleu
from pycocoevalcap.cider.cider import Cider
from pycocoevalcap.cider.cider_scorer import CiderScorer
from pycocoevalcap.meteor.meteor import Meteor
from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer
from sacrebleu.metrics import BLEU
from torchmetrics import MetricCollection
from torchmetrics.classification import Accuracy, ConfusionMatrix, F1Score
from torchmetrics.text import Perplexity

from orchestrator.datasets.batches import IGNORE_INDEX
from orchestrator.datasets.caption_text import caption_words

log = logging.getLogger(__name__)


def perplexity_metric() -> Perplexity:
    """Accumulates over a split; padding targets (IGNORE_INDEX) count for nothing."""
    return Perplexity(ignore_index=IGNORE_INDEX)


def bits_per_token(perplexity: float) -> float:
    """Bits per character for a char-level model: log2 of its perplexity."""
    return math.log2(perplexity)


def classification_metrics(num_classes: int, prefix: str) -> MetricCollection:
    """Accuracy and macro F1 over a split, summed across ranks by torchmetrics."""
    return MetricCollection(
        {
            "accuracy": Accuracy(task="multiclass", num_classes=num_classes),
            "macro_f1": F1Score(task="multiclass", num_classes=num_classes, average="macro"),
        },
        prefix=prefix,
    )


def confusion_matrix(num_classes: int) -> ConfusionMatrix:
    return ConfusionMatrix(task="multiclass", num_classes=num_classes)


def corpus_bleu(hypotheses: list[str], references: list[str]) -> tuple[float, str]:
    """sacrebleu's corpus BLEU on detokenised text, and its signature string."""
    bleu = BLEU()
    score = bleu.corpus_score(hypotheses, [references])
    return score.score, str(bleu.get_signature())


@cache
def _sentence_bleu() -> BLEU:
    return BLEU(effective_order=True)  # sacrebleu.sentence_bleu's settings, built once


def sentence_bleu(hypothesis: str, reference: str) -> float:
    """sacrebleu's sentence BLEU (effective order): a per-row guide on the translations
    page. The corpus BLEU pools n-gram counts over the split; it is not their mean."""
    return _sentence_bleu().sentence_score(hypothesis, [reference]).score


# Caption scores: coco-caption's, through pycocoevalcap, on its PTB-tokenised, lower-cased,
# punctuation-free words. Where Java is missing, the fallback tokenizer is caption_words
# (Moses words, the same punctuation removed) and METEOR (a Java program) is left out.
FALLBACK_TOKENIZER = "caption_words (lower-cased Moses words, PTB punctuation removed)"


def java_available() -> bool:
    return shutil.which("java") is not None


@cache
def _say_no_java() -> None:
    log.warning("java not found: caption metrics tokenise with the fallback %s instead of "
                "the PTB tokenizer, and METEOR is not computed", FALLBACK_TOKENIZER)


@cache
def _meteor() -> Meteor:
    """One METEOR process per worker (it takes seconds to start), reused for every split."""
    return Meteor()


def caption_tokenizer() -> str:
    """The name of the tokenizer the caption metrics use here; logged with the scores."""
    return "ptb (pycocoevalcap, java)" if java_available() else FALLBACK_TOKENIZER


def tokenize_captions(captions: dict[str, list[str]]) -> dict[str, list[str]]:
    """id -> captions, as space-joined words; PTB's tokenizer, or the fallback without Java."""
    if java_available():
        # empty captions (a model that stops at once) stay empty: PTB would drop their lines
        words = {key: [c for c in value if c.strip()] for key, value in captions.items()}
        tokenized = PTBTokenizer().tokenize(
            {key: [{"caption": " ".join(c.split())} for c in value]
             for key, value in words.items() if value})
        return {key: tokenized.get(key, []) + [""] * (len(value) - len(words[key]))
                for key, value in captions.items()}
    _say_no_java()
    return {key: [" ".join(caption_words(c)) for c in value] for key, value in captions.items()}


def caption_scores(
    hypotheses: dict[str, str], references: dict[str, list[str]], meteor: bool = True
) -> dict[str, float]:
    """BLEU-1..4, CIDEr-D (and METEOR where Java exists) of one caption per id against its
    references. Give the whole evaluated split at once: CIDEr-D's document frequencies come
    from these references, as in coco-caption, so a single image alone scores nothing."""
    return caption_scores_by_item(hypotheses, references, meteor)[0]


def caption_scores_by_item(
    hypotheses: dict[str, str], references: dict[str, list[str]], meteor: bool = True
) -> tuple[dict[str, float], dict[str, float]]:
    """`caption_scores`, and each id's own CIDEr-D from the same computation (same document
    frequencies; their mean is the split's CIDEr-D): the captions page's per-row score."""
    if set(hypotheses) != set(references):
        raise ValueError("hypotheses and references must have the same ids")
    refs = tokenize_captions(references)
    hyps = tokenize_captions({key: [value] for key, value in hypotheses.items()})
    bleu, _ = Bleu(4).compute_score(refs, hyps, verbose=0)
    cider, per_item = Cider().compute_score(refs, hyps)
    scores = {f"bleu_{n}": float(value) for n, value in enumerate(bleu, start=1)}
    scores["cider_d"] = float(cider)
    if meteor and java_available():
        scores["meteor"] = float(_meteor().compute_score(refs, hyps)[0])
    # pycocoevalcap scores the ids in the order of refs' keys
    return scores, {key: float(value) for key, value in zip(refs, per_item, strict=True)}


class _Frequencies(dict):
    """Document frequencies; an n-gram no document holds has 0, and reading it stores
    nothing (pycocoevalcap's defaultdict would grow with every sampled n-gram)."""

    def __missing__(self, ngram: tuple[str, ...]) -> float:
        return 0.0


class CorpusCiderD:
    """CIDEr-D with the document frequencies of a fixed corpus: SCST's reward, whose corpus
    is the training references (as self-critical.pytorch's CiderD with corpus df), not the
    scored batch's. pycocoevalcap's own scorer computes it.

    Captions and references are space-joined words as `caption_words` gives them, the
    words the vocabulary was built from: no Java tokenizer per training batch."""

    def __init__(self, corpus: list[list[str]]):
        counting = CiderScorer(n=4, sigma=6.0)
        for references in corpus:
            counting.cook_append(None, references)
        counting.compute_doc_freq()
        self.document_frequency = _Frequencies(counting.document_frequency)
        self.documents = len(corpus)

    def scores(self, captions: list[str], references: list[list[str]]) -> list[float]:
        """Each caption's CIDEr-D against its own references."""
        scored: list[float] = []
        for start in range(0, len(captions), self.documents):
            scorer = CiderScorer(n=4, sigma=6.0)
            for caption, refs in zip(captions[start:start + self.documents],
                                     references[start:start + self.documents], strict=True):
                scorer.cook_append(caption, refs)
            scorer.document_frequency = self.document_frequency
            # compute_cider counts the documents as len(crefs): padding it to the corpus
            # size makes the idf the corpus'; it scores only the entries with a caption.
            scorer.crefs += [[]] * (self.documents - len(scorer.ctest))
            scored.extend(float(score) for score in scorer.compute_cider())
        return scored

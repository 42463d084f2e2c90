"""The `translation` task: teacher-forced training, BLEU on decoded text, and what a person
reads after the test: a translations page, BLEU by beam size, attention heatmaps."""

from __future__ import annotations

from itertools import islice
from typing import Any

import torch
import torch.distributed as dist
import torch.nn.functional as F
from matplotlib.figure import Figure

from orchestrator.datasets.batches import IGNORE_INDEX, TranslationBatch
from orchestrator.datasets.text_processing import text_processors
from orchestrator.datasets.tokenizer import EOS, PAD, Tokenizer
from orchestrator.lightning_modules import decoding
from orchestrator.lightning_modules.attention_pictures import attention_heatmap, sentence_title
from orchestrator.lightning_modules.beam_comparison import ByBeam, beam_artifacts
from orchestrator.lightning_modules.eval_settings import EvalSettings, EvaluatedWithSettings
from orchestrator.lightning_modules.html_pages import PAGE_ROWS, PageHeader, PageRow, results_page
from orchestrator.lightning_modules.metrics import corpus_bleu, perplexity_metric, sentence_bleu
from orchestrator.lightning_modules.scheduled_sampling import SamplingSchedule, training_logits
from orchestrator.lightning_modules.self_critical import (
    SelfCriticalSettings,
    self_critical_training_loss,
)
from orchestrator.lightning_modules.seq2seq import Seq2Seq, Seq2SeqConfig
from orchestrator.lightning_modules.task_module import TaskModule
from orchestrator.lightning_modules.unk_replacement import replace_unknown

ATTENTION_EXAMPLES = 4  # test sentences drawn as attention heatmaps: the longest that fit
ATTENTION_MAX_TOKENS = 40  # source tokens at most in a heatmap, so its cells stay readable
Decoded = tuple[str, str, str]  # (source, hypothesis, reference)
Longest = tuple[int, str, list[int]]  # (source length, source, source ids)


class TranslationTask(EvaluatedWithSettings, TaskModule):
    """Steps and optimisers; decoding through the shared search in `decoding.py`."""

    # What the members of an ensemble must share (worker/tasks.py: join_ensemble).
    VOCABULARY_KEYS = ("source_vocab", "target_vocab", "text", "text_models")

    def __init__(
        self,
        model: dict[str, Any],
        optim: dict[str, Any],
        eval_settings: dict[str, Any],
        source_vocab: list[str],
        target_vocab: list[str],
        text: dict[str, str],
        label_smoothing: float,
        text_models: dict[str, bytes] | None = None,
        scheduled_sampling: dict[str, Any] | None = None,
        self_critical: dict[str, Any] | None = None,
    ):
        """self_critical: the `train.scst` settings when training is self-critical."""
        super().__init__()
        # Not sent to the logger: the launcher logs the flattened config as MLflow params.
        self.save_hyperparameters(logger=False)
        self.label_smoothing = label_smoothing
        self.sampling = SamplingSchedule(**(scheduled_sampling or {}))
        self.self_critical = SelfCriticalSettings(**self_critical) if self_critical else None
        if model.get("share_embeddings") and source_vocab != target_vocab:
            raise ValueError("model.share_embeddings needs one vocabulary for both languages")
        self.model = Seq2Seq(Seq2SeqConfig(len(source_vocab), len(target_vocab), **model))
        self.source_vocab = Tokenizer("word", source_vocab)
        self.target_vocab = Tokenizer("word", target_vocab)
        # the checkpoint carries any sentencepiece models, so it translates on its own
        self.source_text, self.target_text = text_processors(text, text_models or {})
        self.eval_settings = EvalSettings(**eval_settings)
        self.val_perplexity = perplexity_metric()
        self._outputs: dict[str, list[Decoded]] = {}  # stage -> decoded sentences
        self._longest: list[Longest] = []  # test sentences for the attention heatmaps
        self.artifacts: dict[str, Figure | str] = {}  # logged by the launcher's train loop

    # training ---------------------------------------------------------------------------
    def training_step(self, batch: TranslationBatch, batch_idx: int) -> torch.Tensor:
        if self.self_critical is not None:
            return self._self_critical_step(batch)
        logits = training_logits(self, (batch["src"], batch["src_lengths"]), batch["tgt_in"])
        loss = F.cross_entropy(logits.flatten(0, 1), batch["tgt_out"].flatten(),
                               ignore_index=IGNORE_INDEX, label_smoothing=self.label_smoothing)
        return self.log_training_loss(loss)

    def _self_critical_step(self, batch: TranslationBatch) -> torch.Tensor:
        """SCST's loss for the batch: sampled translations rewarded with their sentence BLEU
        (0..1) against the reference."""
        def reward(sequences: list[list[int]], owners: list[int]) -> list[float]:
            return [sentence_bleu(self.target_text.detokenize(
                        [self.target_vocab.tokens[i] for i in ids]),
                        batch["references"][owner]) / 100
                    for ids, owner in zip(sequences, owners, strict=True)]

        src, lengths = batch["src"], batch["src_lengths"]
        return self_critical_training_loss(
            self, lambda: self.model.encode(src, lengths), src.size(0),
            decoding.decoding_config(self.eval_settings, self.target_vocab, beam_size=1,
                                     ratio=True), reward, lengths)

    # evaluation -------------------------------------------------------------------------
    def validation_step(self, batch: TranslationBatch, batch_idx: int) -> None:
        logits = self.model(batch["src"], batch["src_lengths"], batch["tgt_in"])
        self.val_perplexity.update(logits, batch["tgt_out"])
        if batch_idx < self.eval_settings.val_bleu_batches:
            hypotheses = self.translate_batch(batch["src"], batch["src_lengths"], beam_size=1,
                                              sources=batch["sources"])
            self._outputs.setdefault("val", []).extend(
                zip(batch["sources"], hypotheses, batch["references"], strict=True))

    def on_validation_epoch_end(self) -> None:
        perplexity = self.val_perplexity.compute()
        self.val_perplexity.reset()
        self.log_dict({"val_perplexity": perplexity, "val_loss": perplexity.log()},
                      sync_dist=True)
        if self.eval_settings.val_bleu_batches:  # 0: scored in the background instead
            self.log("val_bleu", self._bleu("val")[0], sync_dist=True)

    def test_step(self, batch: TranslationBatch, batch_idx: int) -> None:
        for beam_size in self.eval_settings.beam_sizes:
            hypotheses = self.translate_batch(batch["src"], batch["src_lengths"], beam_size,
                                              sources=batch["sources"])
            self._outputs.setdefault(f"beam{beam_size}", []).extend(
                zip(batch["sources"], hypotheses, batch["references"], strict=True)
            )
        self._keep_longest(batch)

    def on_test_epoch_start(self) -> None:
        self._longest = []

    def on_test_epoch_end(self) -> None:
        signature, by_beam = "", {}
        for beam_size in self.eval_settings.beam_sizes:
            bleu, signature = self._bleu(f"beam{beam_size}", keep=True)
            self.log(f"test_bleu_beam{beam_size}", bleu, sync_dist=True)
            by_beam[beam_size] = {"bleu": bleu}
        if self.global_rank == 0:  # the artifacts are rank 0's to log
            self._make_artifacts(by_beam, signature)
        self._outputs.clear()
        self._longest = []

    def _bleu(self, stage: str, keep: bool = False) -> tuple[float, str]:
        """Corpus BLEU over every rank's decoded sentences of this stage."""
        decoded = _gather(self._outputs.get(stage, []) if keep
                          else self._outputs.pop(stage, []))
        if keep:
            self._outputs[stage] = decoded
        if not decoded:
            return 0.0, ""
        return corpus_bleu([hyp for _, hyp, _ in decoded], [ref for _, _, ref in decoded])

    # decoding ---------------------------------------------------------------------------
    @torch.no_grad()
    def translate_batch(
        self, src: torch.Tensor, src_lengths: torch.Tensor, beam_size: int,
        sources: list[str] | None = None,
    ) -> list[str]:
        """Detokenised best translations of a padded batch of source ids; with the raw
        `sources`, `eval.replace_unk` can copy source words."""
        found = self._search(src, src_lengths, beam_size)
        return [self._detokenize(hypothesis, source) for hypothesis, source in
                zip(found, sources or [None] * len(found), strict=True)]

    def translate(self, sentences: list[str], beam_size: int) -> list[str]:
        """Raw source sentences -> detokenised translations."""
        ids = [self.source_vocab.encode(self.source_text.tokenize(s)) or [0] for s in sentences]
        src, lengths = self._padded(ids)
        self.model.eval()
        return self.translate_batch(src, lengths, beam_size, sentences)

    def _padded(self, ids: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
        """Source id lists -> a padded batch and its lengths, on the module's device."""
        lengths = torch.tensor([len(row) for row in ids])
        src = torch.full((len(ids), int(lengths.max())), self.source_vocab.index[PAD])
        for row, seq in enumerate(ids):
            src[row, : len(seq)] = torch.tensor(seq)
        return src.to(self.device), lengths.to(self.device)

    def _search(self, src: torch.Tensor, src_lengths: torch.Tensor, beam_size: int) -> list[Any]:
        state = self.model.encode(src, src_lengths)
        return decoding.best_hypotheses(self.model, state, src.size(0), self.eval_settings,
                                        self.target_vocab, beam_size, src_lengths, src.device)

    def _detokenize(self, hypothesis: decoding.Hypothesis, source: str | None) -> str:
        return self.target_text.detokenize(self._output_tokens(hypothesis, source))

    def _output_tokens(self, hypothesis: decoding.Hypothesis, source: str | None) -> list[str]:
        """The hypothesis as target tokens, each <unk> copied from `source` under
        `eval.replace_unk` (the source's tokens are those its ids were looked up for)."""
        tokens = [self.target_vocab.tokens[i] for i in hypothesis.tokens]
        # the source is tokenised again only for an output that holds an <unk>
        if (self.eval_settings.replace_unk and source is not None
                and self.target_vocab.unk_id in hypothesis.tokens):
            source_tokens = self.source_text.tokenize(source).split()
            tokens = replace_unknown(tokens, hypothesis.attention, source_tokens)
        return tokens

    # artifacts --------------------------------------------------------------------------
    def _make_artifacts(self, by_beam: ByBeam, signature: str) -> None:
        """What a person reads after the test; the decoded sentences are all gathered."""
        self.artifacts["bleu_signature.txt"] = signature
        outputs = {beam: self._outputs.get(f"beam{beam}", []) for beam in by_beam}
        self.artifacts["translations.html"] = translations_page(outputs, by_beam, signature)
        count = len(next(iter(outputs.values()), []))
        self.artifacts.update(beam_artifacts(by_beam,
                                             f"Test BLEU by beam size ({count} sentences)"))
        self._draw_attention()

    def _keep_longest(self, batch: TranslationBatch) -> None:
        """Remember this rank's longest test sentences that a heatmap can hold (one each)."""
        kept = {source: (length, source, ids) for length, source, ids in self._longest}
        for row, length in enumerate(batch["src_lengths"].tolist()):
            source = batch["sources"][row]
            if length <= ATTENTION_MAX_TOKENS and source not in kept:
                kept[source] = (length, source, batch["src"][row, :length].tolist())
        self._longest = sorted(kept.values(), key=lambda item: -item[0])[:ATTENTION_EXAMPLES]

    def _draw_attention(self) -> None:
        """Heatmaps of the kept sentences, decoded at the largest beam size."""
        if not self._longest:
            return
        beam = max(self.eval_settings.beam_sizes)
        src, lengths = self._padded([ids for _, _, ids in self._longest])
        found = self._search(src, lengths, beam)
        for number, (hypothesis, (_, source, ids)) in enumerate(
                zip(found, self._longest, strict=True)):
            if hypothesis.attention is None:
                continue
            tokens = [self.source_vocab.tokens[i] for i in ids]
            output = self._output_tokens(hypothesis, source) + [EOS]
            title = sentence_title(source, self._detokenize(hypothesis, source),
                                   f"(test sentence, beam {beam}, {len(tokens)} source tokens)")
            self.artifacts[f"attention/sentence_{number}.png"] = attention_heatmap(
                hypothesis.attention[: len(output), : len(tokens)].cpu(), tokens, output, title)


def translation_rows(outputs: dict[int, list[Decoded]]) -> list[PageRow]:
    """The translations page's rows: each test sentence (the first PAGE_ROWS), its output at
    every beam size with that output's sentence BLEU, and its reference."""
    beams = sorted(outputs)
    rows = []
    for decoded in islice(zip(*(outputs[beam] for beam in beams), strict=True), PAGE_ROWS):
        source, _, reference = decoded[0]
        hypotheses = {beam: hyp for beam, (_, hyp, _) in zip(beams, decoded, strict=True)}
        rows.append(PageRow(source, hypotheses,
                            {beam: sentence_bleu(hyp, reference)
                             for beam, hyp in hypotheses.items()}, [reference]))
    return rows


def translations_page(outputs: dict[int, list[Decoded]], by_beam: ByBeam,
                      signature: str) -> str:
    """translations.html: every test sentence's translations side by side (HTML-escaped)."""
    header = PageHeader(
        title="Test translations", total=len(next(iter(outputs.values()), [])),
        score_name="sentence BLEU (sacrebleu.sentence_bleu, 0-100)", corpus=by_beam,
        notes=[f"Corpus BLEU: sacrebleu {signature}. The corpus BLEU pools n-gram counts "
               "over the whole test set; it is not the mean of the sentence scores."],
        score_scale=100.0)
    return results_page(header, translation_rows(outputs), "source")


def _gather(decoded: list[Decoded]) -> list[Decoded]:
    if not (dist.is_available() and dist.is_initialized()):
        return decoded
    everyone: list[list[Decoded]] = [[] for _ in range(dist.get_world_size())]
    dist.all_gather_object(everyone, decoded)
    return [pair for part in everyone for pair in part]

"""The `translation` task: teacher-forced training, BLEU on decoded text, attention maps."""

from __future__ import annotations

from typing import Any

import matplotlib.pyplot as plt
import torch
import torch.distributed as dist
import torch.nn.functional as F
from matplotlib.figure import Figure

from orchestrator.datasets.batches import IGNORE_INDEX, TranslationBatch
from orchestrator.datasets.text_processing import text_processors
from orchestrator.datasets.tokenizer import EOS, PAD, Tokenizer
from orchestrator.lightning_modules import decoding
from orchestrator.lightning_modules.eval_settings import EvalSettings, EvaluatedWithSettings
from orchestrator.lightning_modules.metrics import corpus_bleu, perplexity_metric
from orchestrator.lightning_modules.seq2seq import Seq2Seq, Seq2SeqConfig
from orchestrator.lightning_modules.task_module import TaskModule

ATTENTION_EXAMPLES = 4  # test sentences drawn as attention heatmaps


class TranslationTask(EvaluatedWithSettings, TaskModule):
    """Steps and optimisers; decoding through the shared search in `decoding.py`."""

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
    ):
        super().__init__()
        # Not sent to the logger: the launcher logs the flattened config as MLflow params.
        self.save_hyperparameters(logger=False)
        self.label_smoothing = label_smoothing
        self.model = Seq2Seq(Seq2SeqConfig(len(source_vocab), len(target_vocab), **model))
        self.source_vocab = Tokenizer("word", source_vocab)
        self.target_vocab = Tokenizer("word", target_vocab)
        # the checkpoint carries any sentencepiece models, so it translates on its own
        self.source_text, self.target_text = text_processors(text, text_models or {})
        self.eval_settings = EvalSettings(**eval_settings)
        self.val_perplexity = perplexity_metric()
        self._outputs: dict[str, list[tuple[str, str]]] = {}  # stage -> (hypothesis, ref)
        self.artifacts: dict[str, Figure | str] = {}  # logged by the launcher's train loop

    # training ---------------------------------------------------------------------------
    def training_step(self, batch: TranslationBatch, batch_idx: int) -> torch.Tensor:
        logits = self.model(batch["src"], batch["src_lengths"], batch["tgt_in"])
        loss = F.cross_entropy(logits.flatten(0, 1), batch["tgt_out"].flatten(),
                               ignore_index=IGNORE_INDEX, label_smoothing=self.label_smoothing)
        return self.log_training_loss(loss)

    # evaluation -------------------------------------------------------------------------
    def validation_step(self, batch: TranslationBatch, batch_idx: int) -> None:
        logits = self.model(batch["src"], batch["src_lengths"], batch["tgt_in"])
        self.val_perplexity.update(logits, batch["tgt_out"])
        if batch_idx < self.eval_settings.val_bleu_batches:
            hypotheses = self.translate_batch(batch["src"], batch["src_lengths"], beam_size=1)
            self._outputs.setdefault("val", []).extend(zip(hypotheses, batch["references"],
                                                            strict=True))

    def on_validation_epoch_end(self) -> None:
        perplexity = self.val_perplexity.compute()
        self.val_perplexity.reset()
        self.log_dict({"val_perplexity": perplexity, "val_loss": perplexity.log()},
                      sync_dist=True)
        bleu, _ = self._bleu("val")
        self.log("val_bleu", bleu, sync_dist=True)

    def test_step(self, batch: TranslationBatch, batch_idx: int) -> None:
        for beam_size in self.eval_settings.beam_sizes:
            hypotheses = self.translate_batch(batch["src"], batch["src_lengths"], beam_size)
            self._outputs.setdefault(f"beam{beam_size}", []).extend(
                zip(hypotheses, batch["references"], strict=True)
            )
        if batch_idx == 0:
            self._draw_attention(batch)
            self._outputs["sources"] = [(s, "") for s in batch["sources"]]

    def on_test_epoch_end(self) -> None:
        signature = ""
        for beam_size in self.eval_settings.beam_sizes:
            bleu, signature = self._bleu(f"beam{beam_size}", keep=True)
            self.log(f"test_bleu_beam{beam_size}", bleu, sync_dist=True)
        self.artifacts["bleu_signature.txt"] = signature
        self.artifacts["translations.md"] = self._translations_page()
        self._outputs.clear()

    def _bleu(self, stage: str, keep: bool = False) -> tuple[float, str]:
        """Corpus BLEU over every rank's decoded sentences of this stage."""
        pairs = _gather(self._outputs.get(stage, []) if keep else self._outputs.pop(stage, []))
        if keep:
            self._outputs[stage] = pairs
        if not pairs:
            return 0.0, ""
        hypotheses, references = zip(*pairs, strict=True)
        return corpus_bleu(list(hypotheses), list(references))

    # decoding ---------------------------------------------------------------------------
    @torch.no_grad()
    def translate_batch(
        self, src: torch.Tensor, src_lengths: torch.Tensor, beam_size: int
    ) -> list[str]:
        """Detokenised best translations of a padded batch of source ids."""
        return [self._detokenize(h.tokens) for h in self._search(src, src_lengths, beam_size)]

    def translate(self, sentences: list[str], beam_size: int) -> list[str]:
        """Raw source sentences -> detokenised translations."""
        ids = [self.source_vocab.encode(self.source_text.tokenize(s)) or [0] for s in sentences]
        lengths = torch.tensor([len(row) for row in ids])
        src = torch.full((len(ids), int(lengths.max())), self.source_vocab.index[PAD])
        for row, seq in enumerate(ids):
            src[row, : len(seq)] = torch.tensor(seq)
        self.model.eval()
        return self.translate_batch(src.to(self.device), lengths.to(self.device), beam_size)

    def _search(self, src: torch.Tensor, src_lengths: torch.Tensor, beam_size: int) -> list[Any]:
        state = self.model.encode(src, src_lengths)
        return decoding.best_hypotheses(self.model, state, src.size(0), self.eval_settings,
                                        self.target_vocab, beam_size, src_lengths, src.device)

    def _detokenize(self, ids: list[int]) -> str:
        return self.target_text.detokenize([self.target_vocab.tokens[i] for i in ids])

    # artifacts --------------------------------------------------------------------------
    def _draw_attention(self, batch: TranslationBatch) -> None:
        count = min(ATTENTION_EXAMPLES, batch["src"].size(0))
        src, lengths = batch["src"][:count], batch["src_lengths"][:count]
        for number, hypothesis in enumerate(self._search(src, lengths, beam_size=1)):
            if hypothesis.attention is None:
                continue
            source = [self.source_vocab.tokens[i] for i in src[number, : lengths[number]]]
            output = [self.target_vocab.tokens[i] for i in hypothesis.tokens] + [EOS]
            self.artifacts[f"attention/sentence_{number}.png"] = attention_heatmap(
                hypothesis.attention[: len(output), : len(source)].cpu(), source, output
            )

    def _translations_page(self) -> str:
        beam = max(self.eval_settings.beam_sizes)
        rows = [f"| source | translation (beam {beam}) | reference |", "| --- | --- | --- |"]
        sources = [s for s, _ in self._outputs.get("sources", [])]
        for source, (hypothesis, reference) in zip(sources, self._outputs.get(f"beam{beam}", []),
                                                   strict=False):
            rows.append(f"| {source} | {hypothesis} | {reference} |")
        return "\n".join(rows) + "\n"


def attention_heatmap(weights: torch.Tensor, source: list[str], output: list[str]) -> Figure:
    """Output tokens down, source tokens across; darker = more attention."""
    figure, axes = plt.subplots(figsize=(1 + 0.45 * len(source), 1 + 0.4 * len(output)))
    axes.imshow(weights.numpy(), cmap="Greys", vmin=0.0, vmax=1.0, aspect="auto")
    axes.set_xticks(range(len(source)), source, rotation=60, ha="right")
    axes.set_yticks(range(len(output)), output)
    axes.set_xlabel("source")
    axes.set_ylabel("output")
    figure.tight_layout()
    return figure


def _gather(pairs: list[tuple[str, str]]) -> list[tuple[str, str]]:
    if not (dist.is_available() and dist.is_initialized()):
        return pairs
    everyone: list[list[tuple[str, str]]] = [[] for _ in range(dist.get_world_size())]
    dist.all_gather_object(everyone, pairs)
    return [pair for part in everyone for pair in part]

"""The `image_captioning` and `video_captioning` tasks: teacher-forced training, coco-caption
scores (BLEU-1..4, CIDEr-D, METEOR) of decoded captions, a captions page and attention
overlays. Decoding is the shared search in `decoding.py`.

Scores are computed once over the whole evaluated set, gathered from every rank: CIDEr-D's
document frequencies are that set's references, so no rank scores its share alone.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.distributed as dist
import torch.nn.functional as F
from matplotlib.figure import Figure
from torch import nn

from orchestrator.datasets.batches import IGNORE_INDEX
from orchestrator.datasets.tokenizer import EOS, Tokenizer
from orchestrator.lightning_modules import decoding
from orchestrator.lightning_modules.caption_artifacts import (
    attention_overlay,
    captions_page,
    frame_attention,
)
from orchestrator.lightning_modules.eval_settings import EvalSettings, EvaluatedWithSettings
from orchestrator.lightning_modules.image_captioner import ImageCaptioner, ImageCaptionerConfig
from orchestrator.lightning_modules.metrics import (
    caption_scores,
    caption_tokenizer,
    perplexity_metric,
)
from orchestrator.lightning_modules.task_module import TaskModule
from orchestrator.lightning_modules.video_captioner import VideoCaptioner, VideoCaptionerConfig

PAGE_EXAMPLES = 8  # validation items on the captions page
ATTENTION_EXAMPLES = 3  # of which drawn with attention
Scored = tuple[str, str, list[str]]  # (id, generated caption, references)


class CaptioningTask(EvaluatedWithSettings, TaskModule):
    """Shared by both tasks; a subclass names its batch key and builds its model."""

    inputs = "images"

    def __init__(
        self,
        model: dict[str, Any],
        optim: dict[str, Any],
        eval_settings: dict[str, Any],
        vocab: list[str],
        media: dict[str, Any],
    ):
        super().__init__()
        # Not sent to the logger: the launcher logs the flattened config as MLflow params.
        self.save_hyperparameters(logger=False)
        self.model = self.build_model(model, len(vocab))
        self.vocab = Tokenizer("word", vocab)
        self.eval_settings = EvalSettings(**eval_settings)
        self.media = media  # image_size (and frames): how the `caption` command reads files
        self.val_perplexity = perplexity_metric()
        self._outputs: dict[str, list[Scored]] = {}
        self._examples: dict[str, Any] | None = None  # validation items for the artifacts
        self._last: dict[str, float] = {}  # the latest scores
        self.artifacts: dict[str, Figure | str] = {}  # logged by the launcher's train loop

    def build_model(self, settings: dict[str, Any], vocab_size: int) -> nn.Module:
        raise NotImplementedError

    # training ---------------------------------------------------------------------------
    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        logits = self.model(batch[self.inputs], batch["tgt_in"])
        loss = F.cross_entropy(logits.flatten(0, 1), batch["tgt_out"].flatten(),
                               ignore_index=IGNORE_INDEX)
        return self.log_training_loss(loss)

    # evaluation -------------------------------------------------------------------------
    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        logits = self.model(batch[self.inputs], batch["tgt_in"])
        self.val_perplexity.update(logits, batch["tgt_out"])
        if batch_idx == 0:
            self._examples = {"pixels": batch[self.inputs][:PAGE_EXAMPLES].cpu(),
                              "references": batch["references"][:PAGE_EXAMPLES]}
        if batch_idx < self.eval_settings.val_bleu_batches:
            self._collect("val", batch, beam_size=1)

    def on_validation_epoch_end(self) -> None:
        perplexity = self.val_perplexity.compute()
        self.val_perplexity.reset()
        self.log_dict({"val_perplexity": perplexity, "val_loss": perplexity.log()},
                      sync_dist=True)
        scores = self._scores("val")
        self.log_dict({f"val_{name}": value for name, value in scores.items()}, sync_dist=True)

    def test_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        for beam_size in self.eval_settings.beam_sizes:
            self._collect(f"beam{beam_size}", batch, beam_size)

    def on_test_epoch_end(self) -> None:
        for beam_size in self.eval_settings.beam_sizes:
            scores = self._scores(f"beam{beam_size}", keep=True)
            self.log_dict({f"test_{name}_beam{beam_size}": value
                           for name, value in scores.items()}, sync_dist=True)
        beam = max(self.eval_settings.beam_sizes)
        self.artifacts["captions.md"] = captions_table(self._outputs.get(f"beam{beam}", []),
                                                       beam)
        self.artifacts["caption_metrics.txt"] = (
            f"tokenizer: {caption_tokenizer()}\nscores: pycocoevalcap BLEU-1..4, CIDEr-D "
            f"(document frequencies from the {len(self._outputs.get(f'beam{beam}', []))} "
            "test items' references)" + (", METEOR 1.5" if "meteor" in self._last else "")
            + "\n")
        self._draw_examples()
        self._outputs.clear()

    def _collect(self, stage: str, batch: dict[str, Any], beam_size: int) -> None:
        generated = self.caption(batch[self.inputs], beam_size)
        self._outputs.setdefault(stage, []).extend(
            zip(batch["ids"], generated, batch["references"], strict=True))

    def _scores(self, stage: str, keep: bool = False) -> dict[str, float]:
        """Scores of every rank's captions of this stage, computed on rank 0 and shared."""
        scored = _gather(self._outputs.get(stage, []))
        if keep:
            self._outputs[stage] = scored
        else:
            self._outputs.pop(stage, None)
        scores: dict[str, float] = {}
        if scored and _rank() == 0:
            scores = caption_scores({i: hyp for i, hyp, _ in scored},
                                    {i: refs for i, _, refs in scored},
                                    meteor=self.eval_settings.meteor)
        self._last = _broadcast(scores)
        return self._last

    # decoding ---------------------------------------------------------------------------
    @torch.no_grad()
    def caption(self, pixels: torch.Tensor, beam_size: int) -> list[str]:
        """Images (B, 3, H, W) or clips (B, F, 3, H, W) -> their best captions."""
        return [self._words(h.tokens) for h in self.search_captions(pixels, beam_size)]

    @torch.no_grad()
    def search_captions(self, pixels: torch.Tensor, beam_size: int) -> list[decoding.Hypothesis]:
        state = self.model.encode(pixels)
        return decoding.best_hypotheses(self.model, state, pixels.size(0), self.eval_settings,
                                        self.vocab, beam_size, device=pixels.device)

    def _words(self, ids: list[int]) -> str:
        return " ".join(self.vocab.tokens[i] for i in ids)

    # artifacts --------------------------------------------------------------------------
    def _draw_examples(self) -> None:
        """The captions page and attention of the last validation epoch's first items,
        captioned by the weights under test."""
        if self._examples is None:
            return
        pixels = self._examples["pixels"].to(self.device)
        found = self.search_captions(pixels, max(self.eval_settings.beam_sizes))
        generated = [self._words(h.tokens) for h in found]
        self.artifacts["captions_page.png"] = captions_page(
            pixels.cpu(), generated, self._examples["references"])
        for number, hypothesis in enumerate(found[:ATTENTION_EXAMPLES]):
            if hypothesis.attention is not None:
                words = [*generated[number].split(), EOS]
                self.artifacts[f"attention/example_{number}.png"] = self.draw_attention(
                    pixels[number].cpu(), words, hypothesis.attention[: len(words)].cpu())

    def draw_attention(self, pixels: torch.Tensor, words: list[str],
                       weights: torch.Tensor) -> Figure:
        return attention_overlay(pixels, words, weights)


class ImageCaptioningTask(CaptioningTask):
    inputs = "images"

    def build_model(self, settings: dict[str, Any], vocab_size: int) -> nn.Module:
        return ImageCaptioner(ImageCaptionerConfig(vocab_size, **settings))


class VideoCaptioningTask(CaptioningTask):
    inputs = "frames"

    def build_model(self, settings: dict[str, Any], vocab_size: int) -> nn.Module:
        return VideoCaptioner(VideoCaptionerConfig(vocab_size, **settings))

    def draw_attention(self, pixels: torch.Tensor, words: list[str],
                       weights: torch.Tensor) -> Figure:
        return frame_attention(words, weights)


# The `caption` command picks the class a checkpoint was saved from by its media kind.
CAPTIONERS: dict[str, type[CaptioningTask]] = {
    "image": ImageCaptioningTask, "video": VideoCaptioningTask,
}


def captions_table(scored: list[Scored], beam: int) -> str:
    rows = [f"| id | caption (beam {beam}) | references |", "| --- | --- | --- |"]
    rows += [f"| {i} | {hyp} | {' / '.join(refs)} |" for i, hyp, refs in scored]
    return "\n".join(rows) + "\n"


def _rank() -> int:
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def _gather(items: list[Scored]) -> list[Scored]:
    if not (dist.is_available() and dist.is_initialized()):
        return items
    everyone: list[list[Scored]] = [[] for _ in range(dist.get_world_size())]
    dist.all_gather_object(everyone, items)
    return [item for part in everyone for item in part]


def _broadcast(scores: dict[str, float]) -> dict[str, float]:
    """Rank 0's scores on every rank (one Java tokenizer run, not one per rank)."""
    if not (dist.is_available() and dist.is_initialized()):
        return scores
    shared = [scores]
    dist.broadcast_object_list(shared, src=0)
    return shared[0]

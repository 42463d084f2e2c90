"""The `image_captioning` and `video_captioning` tasks: teacher-forced training, coco-caption
scores (BLEU-1..4, CIDEr-D, METEOR) of decoded captions, and after the test a captions page
(HTML), the scores by beam size and attention pictures. Decoding is the shared search in
`decoding.py`.

Scores are computed once over the whole evaluated set, gathered from every rank: CIDEr-D's
document frequencies are that set's references, so no rank scores its share alone.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from itertools import islice
from typing import Any

import torch
import torch.distributed as dist
import torch.nn.functional as F
from matplotlib.figure import Figure
from torch import nn

from orchestrator.datasets.batches import IGNORE_INDEX
from orchestrator.datasets.caption_text import caption_words
from orchestrator.datasets.tokenizer import EOS, Tokenizer
from orchestrator.lightning_modules import decoding
from orchestrator.lightning_modules.attention_pictures import (
    attention_heatmap,
    image_attention,
    sentence_title,
)
from orchestrator.lightning_modules.beam_comparison import ByBeam, beam_artifacts
from orchestrator.lightning_modules.caption_artifacts import STRIP_FRAMES, thumbnail_jpeg
from orchestrator.lightning_modules.eval_settings import EvalSettings, EvaluatedWithSettings
from orchestrator.lightning_modules.html_pages import PAGE_ROWS, PageHeader, PageRow, results_page
from orchestrator.lightning_modules.image_captioner import ImageCaptioner, ImageCaptionerConfig
from orchestrator.lightning_modules.metrics import (
    CorpusCiderD,
    caption_scores_by_item,
    caption_tokenizer,
    perplexity_metric,
)
from orchestrator.lightning_modules.scheduled_sampling import SamplingSchedule, training_logits
from orchestrator.lightning_modules.self_critical import (
    SelfCriticalSettings,
    self_critical_training_loss,
)
from orchestrator.lightning_modules.task_module import TaskModule
from orchestrator.lightning_modules.video_captioner import VideoCaptioner, VideoCaptionerConfig

ATTENTION_EXAMPLES = 3  # test items drawn with attention: those with the longest captions
Scored = tuple[str, str, list[str]]  # (id, generated caption, references)
CAPTIONS_FILE = "test_captions.jsonl"
Longest = tuple[int, str, torch.Tensor]  # (caption words, id, pixels on the CPU)


class CaptioningTask(EvaluatedWithSettings, TaskModule):
    """Shared by both tasks; a subclass names its batch key and builds its model."""

    inputs = "images"
    # What the members of an ensemble must share (worker/tasks.py: join_ensemble).
    VOCABULARY_KEYS = ("vocab", "media")

    def __init__(
        self,
        model: dict[str, Any],
        optim: dict[str, Any],
        eval_settings: dict[str, Any],
        vocab: list[str],
        media: dict[str, Any],
        scheduled_sampling: dict[str, Any] | None = None,
        self_critical: dict[str, Any] | None = None,
    ):
        """self_critical: the `train.scst` settings when training is self-critical."""
        super().__init__()
        # Not sent to the logger: the launcher logs the flattened config as MLflow params.
        self.save_hyperparameters(logger=False)
        self.model = self.build_model(model, len(vocab))
        self.sampling = SamplingSchedule(**(scheduled_sampling or {}))
        self.self_critical = SelfCriticalSettings(**self_critical) if self_critical else None
        self._reward: CorpusCiderD | None = None  # built from the training references
        self.vocab = Tokenizer("word", vocab)
        self.eval_settings = EvalSettings(**eval_settings)
        self.media = media  # image_size (and frames): how the `caption` command reads files
        self.val_perplexity = perplexity_metric()
        self._outputs: dict[str, list[Scored]] = {}
        self._thumbnails: dict[str, bytes] = {}  # test id -> JPEG, for the captions page
        self._longest: list[Longest] = []  # test items for the attention pictures
        self._item_scores: dict[int, dict[str, float]] = {}  # beam -> id -> CIDEr-D
        self._last: dict[str, float] = {}  # the latest scores
        self.artifacts: dict[str, Figure | str] = {}  # logged by the launcher's train loop

    def build_model(self, settings: dict[str, Any], vocab_size: int) -> nn.Module:
        raise NotImplementedError

    # training ---------------------------------------------------------------------------
    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        if self.self_critical is not None:
            return self._self_critical_step(batch)
        logits = training_logits(self, (batch[self.inputs],), batch["tgt_in"])
        loss = F.cross_entropy(logits.flatten(0, 1), batch["tgt_out"].flatten(),
                               ignore_index=IGNORE_INDEX)
        return self.log_training_loss(loss)

    def on_fit_start(self) -> None:
        if self.self_critical is not None:  # every rank reads the training captions
            self._reward = CorpusCiderD(self.trainer.datamodule.train_references())

    def _self_critical_step(self, batch: dict[str, Any]) -> torch.Tensor:
        """SCST's loss for the batch: sampled captions rewarded with their CIDEr-D against
        the item's references."""
        references = [[" ".join(caption_words(caption)) for caption in captions]
                      for captions in batch["references"]]

        def reward(sequences: list[list[int]], owners: list[int]) -> list[float]:
            return self._reward.scores([self._words(ids) for ids in sequences],
                                       [references[owner] for owner in owners])

        return self_critical_training_loss(
            self, lambda: self.model.encode(batch[self.inputs]), len(batch["ids"]),
            decoding.decoding_config(self.eval_settings, self.vocab, beam_size=1), reward)

    # evaluation -------------------------------------------------------------------------
    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        logits = self.model(batch[self.inputs], batch["tgt_in"])
        self.val_perplexity.update(logits, batch["tgt_out"])
        if batch_idx < self.eval_settings.val_bleu_batches:
            self._collect("val", batch, beam_size=1)

    def on_validation_epoch_end(self) -> None:
        perplexity = self.val_perplexity.compute()
        self.val_perplexity.reset()
        self.log_dict({"val_perplexity": perplexity, "val_loss": perplexity.log()},
                      sync_dist=True)
        if self.eval_settings.val_bleu_batches:  # 0: scored in the background instead
            scores = self._scores("val")
            self.log_dict({f"val_{name}": value for name, value in scores.items()},
                          sync_dist=True)

    def test_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        generated = {beam_size: self._collect(f"beam{beam_size}", batch, beam_size)
                     for beam_size in self.eval_settings.beam_sizes}
        self._keep_for_pictures(batch, generated[max(generated)])

    def on_test_epoch_start(self) -> None:
        self._thumbnails, self._longest, self._item_scores = {}, [], {}

    def on_test_epoch_end(self) -> None:
        by_beam: ByBeam = {}
        for beam_size in self.eval_settings.beam_sizes:
            by_beam[beam_size] = self._scores(f"beam{beam_size}", keep=True)
            self.log_dict({f"test_{name}_beam{beam_size}": value
                           for name, value in by_beam[beam_size].items()}, sync_dist=True)
        thumbnails = _gather_thumbnails(self._thumbnails)  # every rank takes part
        if _rank() == 0:  # the artifacts are rank 0's to log
            self._make_artifacts(by_beam, thumbnails)
        self._outputs.clear()
        self._thumbnails, self._longest, self._item_scores = {}, [], {}

    def _collect(self, stage: str, batch: dict[str, Any], beam_size: int) -> list[str]:
        generated = self.caption(batch[self.inputs], beam_size)
        self._outputs.setdefault(stage, []).extend(
            zip(batch["ids"], generated, batch["references"], strict=True))
        return generated

    def _scores(self, stage: str, keep: bool = False) -> dict[str, float]:
        """Scores of every rank's captions of this stage, computed on rank 0 and shared
        (rank 0 also keeps each test item's own CIDEr-D for the captions page)."""
        scored = _gather(self._outputs.get(stage, []))
        if keep:
            self._outputs[stage] = scored
        else:
            self._outputs.pop(stage, None)
        scores: dict[str, float] = {}
        if scored and _rank() == 0:
            scores, per_item = caption_scores_by_item({i: hyp for i, hyp, _ in scored},
                                                      {i: refs for i, _, refs in scored},
                                                      meteor=self.eval_settings.meteor)
            if keep and stage.startswith("beam"):
                self._item_scores[int(stage[len("beam"):])] = per_item
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
    def _keep_for_pictures(self, batch: dict[str, Any], generated: list[str]) -> None:
        """Thumbnails of this rank's first PAGE_ROWS test items, and its items with the
        longest captions (at the largest beam size) for the attention pictures."""
        room = max(0, PAGE_ROWS - len(self._thumbnails))
        for item, pixels in zip(batch["ids"][:room], batch[self.inputs][:room].cpu(),
                                strict=False):
            self._thumbnails[item] = thumbnail_jpeg(pixels)
        kept = {entry[1]: entry for entry in self._longest}
        lengths = [len(caption.split()) for caption in generated]
        for row in sorted(range(len(lengths)), key=lambda r: -lengths[r])[:ATTENTION_EXAMPLES]:
            item = batch["ids"][row]
            if item not in kept:
                kept[item] = (lengths[row], item, batch[self.inputs][row].cpu())
        self._longest = sorted(kept.values(), key=lambda entry: -entry[0])[:ATTENTION_EXAMPLES]

    def _make_artifacts(self, by_beam: ByBeam, thumbnails: dict[str, bytes]) -> None:
        """The captions page, the scores by beam size, the metric notes and the attention
        pictures, from the gathered test captions."""
        beam = max(by_beam)
        outputs = {size: self._outputs.get(f"beam{size}", []) for size in by_beam}
        self.artifacts["captions.html"] = captions_page(outputs, by_beam, self._item_scores,
                                                        thumbnails, self.media)
        self.artifacts[CAPTIONS_FILE] = captions_jsonl(outputs, self._item_scores)
        count = len(outputs[beam])
        self.artifacts.update(beam_artifacts(by_beam, f"Test caption scores by beam size "
                                                      f"({count} items)"))
        self.artifacts["caption_metrics.txt"] = (
            f"tokenizer: {caption_tokenizer()}\nscores: pycocoevalcap BLEU-1..4, CIDEr-D "
            f"(document frequencies from the {count} test items' references)"
            + (", METEOR 1.5" if "meteor" in by_beam[beam] else "") + "\n")
        self._draw_attention(beam)

    def _draw_attention(self, beam: int) -> None:
        """Attention of the kept test items (longest captions first) at the largest beam."""
        if not self._longest:
            return
        pixels = torch.stack([image for _, _, image in self._longest]).to(self.device)
        found = self.search_captions(pixels, beam)
        for number, (hypothesis, (_, item, image)) in enumerate(
                zip(found, self._longest, strict=True)):
            if hypothesis.attention is None:
                continue
            caption = self._words(hypothesis.tokens)
            words = [*caption.split(), EOS]
            title = sentence_title(caption, None, f"(test item {item}, beam {beam})")
            self.artifacts[f"attention/example_{number}.png"] = self.draw_attention(
                image, words, hypothesis.attention[: len(words)].cpu(), title)

    def draw_attention(self, pixels: torch.Tensor, words: list[str], weights: torch.Tensor,
                       title: str) -> Figure:
        return image_attention(pixels, words, weights, title)


class ImageCaptioningTask(CaptioningTask):
    inputs = "images"

    def build_model(self, settings: dict[str, Any], vocab_size: int) -> nn.Module:
        return ImageCaptioner(ImageCaptionerConfig(vocab_size, **settings))


class VideoCaptioningTask(CaptioningTask):
    inputs = "frames"

    def build_model(self, settings: dict[str, Any], vocab_size: int) -> nn.Module:
        return VideoCaptioner(VideoCaptionerConfig(vocab_size, **settings))

    def draw_attention(self, pixels: torch.Tensor, words: list[str], weights: torch.Tensor,
                       title: str) -> Figure:
        frames = [str(number + 1) for number in range(weights.size(1))]
        return attention_heatmap(weights, frames, words, title, column_label="frame",
                                 row_label="caption word")


# The `caption` command picks the class a checkpoint was saved from by its media kind.
CAPTIONERS: dict[str, type[CaptioningTask]] = {
    "image": ImageCaptioningTask, "video": VideoCaptioningTask,
}


def captions_page(outputs: dict[int, list[Scored]], by_beam: ByBeam,
                  item_scores: dict[int, dict[str, float]], thumbnails: dict[str, bytes],
                  media: dict[str, Any]) -> str:
    """captions.html: each test item's picture, its caption at every beam size with that
    caption's CIDEr-D, and its references (every text HTML-escaped)."""
    rows = [PageRow(source=thumbnails.get(item, ""), label=item, references=references,
                    outputs=captions, scores=scores)
            for item, references, captions, scores in islice(
                _by_item(outputs, item_scores), PAGE_ROWS)]
    video = media.get("kind") == "video"
    header = PageHeader(
        title=f"Test captions ({'video' if video else 'image'} captioning)",
        total=len(next(iter(outputs.values()), [])), score_name="CIDEr-D",
        corpus=by_beam, score_scale=3.0,
        notes=["Per-caption CIDEr-D: pycocoevalcap's, with document frequencies from all the "
               "test items' references; its mean over the test set is the logged test_cider_d."
               + (f" Each clip shows {STRIP_FRAMES} evenly spaced frames of "
                  f"{media.get('frames')}." if video else "")])
    return results_page(header, rows, "clip" if video else "image")


def captions_jsonl(outputs: dict[int, list[Scored]],
                   item_scores: dict[int, dict[str, float]]) -> str:
    """test_captions.jsonl: every test item (the page shows PAGE_ROWS at most) as one JSON
    line, its caption and CIDEr-D at every beam size and its references, for whoever
    compares two runs item by item (a paired bootstrap, benchmarks/self_critical.py). JSON
    writes the beam sizes as string keys."""
    return "".join(json.dumps({"id": item, "captions": captions, "cider_d": scores,
                               "references": references}, ensure_ascii=False) + "\n"
                   for item, references, captions, scores in _by_item(outputs, item_scores))


def _by_item(outputs: dict[int, list[Scored]], item_scores: dict[int, dict[str, float]],
             ) -> Iterator[tuple[str, list[str], dict[int, str], dict[int, float]]]:
    """Each test item in order: its id, references, caption by beam size and that
    caption's CIDEr-D by beam size (the captions page and the JSON lines alike)."""
    beams = sorted(outputs)
    for scored in zip(*(outputs[beam] for beam in beams), strict=True):
        item, _, references = scored[0]
        yield (item, references,
               {beam: caption for beam, (_, caption, _) in zip(beams, scored, strict=True)},
               {beam: item_scores[beam][item] for beam in beams
                if item in item_scores.get(beam, {})})


def _rank() -> int:
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def _gather_thumbnails(thumbnails: dict[str, bytes]) -> dict[str, bytes]:
    """Every rank's thumbnails on every rank (each rank holds PAGE_ROWS at most)."""
    if not (dist.is_available() and dist.is_initialized()):
        return thumbnails
    everyone: list[dict[str, bytes]] = [{} for _ in range(dist.get_world_size())]
    dist.all_gather_object(everyone, thumbnails)
    return {item: data for part in everyone for item, data in part.items()}


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

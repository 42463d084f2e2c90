"""The task registry: one explicit entry per task name, nothing registered by decorators."""

from __future__ import annotations

import dataclasses
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytorch_lightning as pl

from orchestrator.config import ExperimentConfig
from orchestrator.datasets.caption_data import CaptionDataModule, VideoCaptionDataModule
from orchestrator.datasets.caption_shards import prepare_captions, split_items
from orchestrator.datasets.caption_sources import read_flickr_captions, read_video_csv
from orchestrator.datasets.classification_data import ClassificationDataModule
from orchestrator.datasets.classification_shards import prepare_classification
from orchestrator.datasets.language_model_data import LanguageModelDataModule
from orchestrator.datasets.synthetic import (
    date_pairs,
    first_word_examples,
    grammar_text,
    markov_text,
)
from orchestrator.datasets.synthetic_captions import (
    write_moving_shapes_folder,
    write_shapes_folder,
)
from orchestrator.datasets.text_shards import prepare_text, split_by_fraction
from orchestrator.datasets.translation_data import TranslationDataModule
from orchestrator.datasets.translation_shards import prepare_translation
from orchestrator.datasets.video_shards import mp4_fields
from orchestrator.lightning_modules.captioning import (
    CAPTIONERS,
    CaptioningTask,
    ImageCaptioningTask,
    VideoCaptioningTask,
)
from orchestrator.lightning_modules.image_captioner import ImageCaptionerConfig
from orchestrator.lightning_modules.language_model import LanguageModelTask
from orchestrator.lightning_modules.rnn_classifier import RNNClassifierConfig
from orchestrator.lightning_modules.rnn_language_model import RNNLanguageModelConfig
from orchestrator.lightning_modules.sentiment import SentimentTask
from orchestrator.lightning_modules.seq2seq import Seq2SeqConfig
from orchestrator.lightning_modules.translation import TranslationTask
from orchestrator.lightning_modules.video_captioner import VideoCaptionerConfig


@dataclass(frozen=True)
class TaskSpec:
    module_class: type[pl.LightningModule]  # also loads the task's checkpoints
    build_datamodule: Callable[[ExperimentConfig], pl.LightningDataModule]
    build_module: Callable[[ExperimentConfig, pl.LightningDataModule], pl.LightningModule]
    # Example outputs of a trained model, logged as samples.txt
    samples: Callable[[pl.LightningModule, ExperimentConfig], list[str]]
    # monitor, mode, summary and beam metric: orchestrator/task_metrics.py


def model_settings(config: ExperimentConfig, model_config: type) -> dict[str, Any]:
    """The keys of the shared `model` section that this task's architecture takes."""
    names = {field.name for field in dataclasses.fields(model_config)}
    return {key: value for key, value in config.model.model_dump().items() if key in names}


def stream_settings(config: ExperimentConfig) -> dict[str, Any]:
    """The DataModule settings every task shares; an unset shuffle buffer keeps the
    DataModule's own default, which suits its samples (BPTT windows vs sentences)."""
    data = config.data
    settings = {"batch_size": data.batch_size, "num_workers": data.num_workers,
                "batches_per_epoch": config.train.batches_per_epoch}
    if data.shuffle_buffer is not None:
        settings["shuffle_buffer"] = data.shuffle_buffer
    return settings


def _language_model_data(config: ExperimentConfig) -> LanguageModelDataModule:
    return LanguageModelDataModule(config.data.path, bptt=config.data.bptt,
                                   **stream_settings(config))


def _language_model(
    config: ExperimentConfig, datamodule: LanguageModelDataModule
) -> LanguageModelTask:
    model = model_settings(config, RNNLanguageModelConfig)
    return LanguageModelTask(
        model=model, optim=config.optim.model_dump(), vocab=datamodule.tokenizer.tokens,
        level=datamodule.tokenizer.level, carry_hidden=config.data.carry_hidden,
    )


def _generated_text(module: LanguageModelTask, config: ExperimentConfig) -> list[str]:
    settings = config.generate
    return [
        module.generate_text(prompt, settings.length, settings.temperature, seed=config.seed)
        for prompt in settings.prompts
    ]


def _sentiment_data(config: ExperimentConfig) -> ClassificationDataModule:
    return ClassificationDataModule(config.data.path, max_tokens=config.data.max_tokens,
                                    **stream_settings(config))


def _sentiment(config: ExperimentConfig, datamodule: ClassificationDataModule) -> SentimentTask:
    model = model_settings(config, RNNClassifierConfig)
    return SentimentTask(model=model, optim=config.optim.model_dump(),
                         vocab=datamodule.tokenizer.tokens, labels=datamodule.labels)


def _translation_data(config: ExperimentConfig) -> TranslationDataModule:
    return TranslationDataModule(config.data.path, max_tokens=config.data.max_tokens,
                                 **stream_settings(config))


def _translation(
    config: ExperimentConfig, datamodule: TranslationDataModule
) -> TranslationTask:
    return TranslationTask(
        model=model_settings(config, Seq2SeqConfig), optim=config.optim.model_dump(),
        search=config.eval.model_dump(), label_smoothing=config.model.label_smoothing,
        source_vocab=datamodule.source_vocab.tokens, target_vocab=datamodule.target_vocab.tokens,
        text=datamodule.manifest.text or {}, text_models=datamodule.text_models,
    )


def _translated_prompts(module: TranslationTask, config: ExperimentConfig) -> list[str]:
    prompts = config.generate.prompts
    beam = max(config.eval.beam_sizes)
    return [f"{source}\t{target}" for source, target in zip(prompts,
                                                              module.translate(prompts, beam),
                                                              strict=True)]


def _classified_prompts(module: SentimentTask, config: ExperimentConfig) -> list[str]:
    prompts = config.generate.prompts
    return [f"{label}\t{text}" for text, label in zip(prompts, module.classify(prompts),
                                                       strict=True)]


def _caption_data(config: ExperimentConfig) -> CaptionDataModule:
    data = config.data
    settings = {"image_size": data.image_size, "max_tokens": data.max_tokens,
                **stream_settings(config)}
    if config.task == "video_captioning":
        return VideoCaptionDataModule(data.path, frames=data.frames, **settings)
    return CaptionDataModule(data.path, **settings)


def _captioning(config: ExperimentConfig, datamodule: CaptionDataModule) -> CaptioningTask:
    kind = "video" if config.task == "video_captioning" else "image"
    architecture = VideoCaptionerConfig if kind == "video" else ImageCaptionerConfig
    media = {"kind": kind, "image_size": config.data.image_size, "frames": config.data.frames}
    return CAPTIONERS[kind](
        model=model_settings(config, architecture), optim=config.optim.model_dump(),
        search=config.eval.model_dump(), vocab=datamodule.vocab.tokens, media=media,
        meteor=config.eval.meteor,
    )


def _captioned_test_items(module: CaptioningTask, config: ExperimentConfig) -> list[str]:
    """Captions of the first few test items (best beam), as `id<TAB>caption`."""
    batch = next(iter(_caption_data(config).test_dataloader()), None)
    if batch is None:
        return []
    count = min(4, len(batch["ids"]))
    captions = module.caption(batch[module.inputs][:count].to(module.device),
                              max(config.eval.beam_sizes))
    return [f"{item}\t{caption}" for item, caption in zip(batch["ids"], captions, strict=False)]


def _captioning_spec(module_class: type[pl.LightningModule]) -> TaskSpec:
    """Image and video captioning differ only in their module (and so their model)."""
    return TaskSpec(
        module_class=module_class,
        build_datamodule=_caption_data,
        build_module=_captioning,
        samples=_captioned_test_items,
    )


TASKS: dict[str, TaskSpec] = {
    "language_model": TaskSpec(
        module_class=LanguageModelTask,
        build_datamodule=_language_model_data,
        build_module=_language_model,
        samples=_generated_text,
    ),
    "sentiment": TaskSpec(
        module_class=SentimentTask,
        build_datamodule=_sentiment_data,
        build_module=_sentiment,
        samples=_classified_prompts,
    ),
    "translation": TaskSpec(
        module_class=TranslationTask,
        build_datamodule=_translation_data,
        build_module=_translation,
        samples=_translated_prompts,
    ),
    "image_captioning": _captioning_spec(ImageCaptioningTask),
    "video_captioning": _captioning_spec(VideoCaptioningTask),
}


SAMPLE_SIZE_CHARS = 300_000


def _write_text_sample(corpus: Callable[..., str]) -> Callable[[Path, int], None]:
    def write(path: Path, seed: int) -> None:
        text = corpus(SAMPLE_SIZE_CHARS, seed=seed)
        prepare_text(split_by_fraction(text, 0.05, 0.05), path, "char", 512, 32)

    return write


def _write_dates_sample(path: Path, seed: int) -> None:
    pairs = date_pairs(5000, seed=seed)
    splits = {"train": pairs[:4400], "val": pairs[4400:4700], "test": pairs[4700:]}
    prepare_translation(splits, path, "en", "en", min_freq=1, samples_per_shard=1000)


def _write_first_word_sample(path: Path, seed: int) -> None:
    rows = first_word_examples(3000, seed=seed)
    splits = {"train": rows[:2400], "val": rows[2400:2700], "test": rows[2700:]}
    prepare_classification(splits, path, samples_per_shard=500)


SHAPES_IMAGES = 2400  # 1/12 each for val and test
MOVING_SHAPES_CLIPS = 1200


def _write_shapes_sample(path: Path, seed: int) -> None:
    with tempfile.TemporaryDirectory() as folder:
        raw = Path(folder)
        items = read_flickr_captions(write_shapes_folder(raw, SHAPES_IMAGES, seed), raw / "images")
        prepare_captions(split_items(items, 1 / 12, 1 / 12, seed), path, samples_per_shard=500)


def _write_moving_shapes_sample(path: Path, seed: int) -> None:
    with tempfile.TemporaryDirectory() as folder:
        raw = Path(folder)
        captions = write_moving_shapes_folder(raw, MOVING_SHAPES_CLIPS, seed)
        items = read_video_csv(captions, raw / "videos")
        prepare_captions(split_items(items, 1 / 12, 1 / 12, seed), path, "video_captioning",
                         mp4_fields, samples_per_shard=250, text={"media": "mp4"})


# The built-in sample datasets (config `data.sample`): name -> writer(path, seed).
SAMPLE_DATASETS: dict[str, Callable[[Path, int], None]] = {
    "grammar": _write_text_sample(grammar_text),
    "markov": _write_text_sample(markov_text),
    "first_word": _write_first_word_sample,
    "dates": _write_dates_sample,
    "shapes": _write_shapes_sample,
    "moving_shapes": _write_moving_shapes_sample,
}

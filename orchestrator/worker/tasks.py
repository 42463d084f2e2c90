"""The task registry: one explicit entry per task name, nothing registered by decorators.

Each entry says how a worker builds the task's DataModule and LightningModule from the
experiment config, and which module class loads the task's checkpoints."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytorch_lightning as pl

from orchestrator.config import ExperimentConfig, ModelConfig
from orchestrator.datasets.caption_data import CaptionDataModule, VideoCaptionDataModule
from orchestrator.datasets.classification_data import ClassificationDataModule
from orchestrator.datasets.frame_label_data import FrameLabelDataModule
from orchestrator.datasets.language_model_data import LanguageModelDataModule
from orchestrator.datasets.translation_data import TranslationDataModule
from orchestrator.datasets.word_vectors import check_vectors, embedding_matrix
from orchestrator.errors import OrchestratorError
from orchestrator.lightning_modules.captioning import (
    CAPTIONERS,
    CaptioningTask,
    ImageCaptioningTask,
    VideoCaptioningTask,
)
from orchestrator.lightning_modules.ensemble import Ensemble
from orchestrator.lightning_modules.frame_classification import FrameClassificationTask
from orchestrator.lightning_modules.frame_classifier import FrameClassifierConfig
from orchestrator.lightning_modules.image_captioner import ImageCaptionerConfig
from orchestrator.lightning_modules.language_model import LanguageModelTask
from orchestrator.lightning_modules.rnn_classifier import RNNClassifierConfig
from orchestrator.lightning_modules.rnn_language_model import RNNLanguageModelConfig
from orchestrator.lightning_modules.sentiment import SentimentTask
from orchestrator.lightning_modules.seq2seq import Seq2SeqConfig
from orchestrator.lightning_modules.translation import TranslationTask
from orchestrator.lightning_modules.video_captioner import VideoCaptionerConfig
from orchestrator.run_files import CONFIG_KEY, checkpoint_file, read_checkpoint


@dataclass(frozen=True)
class TaskSpec:
    module_class: type[pl.LightningModule]  # built from a checkpoint by load_task_module
    build_datamodule: Callable[[ExperimentConfig], pl.LightningDataModule]
    build_module: Callable[[ExperimentConfig, pl.LightningDataModule], pl.LightningModule]
    # Example outputs of a trained model, logged as samples.txt
    samples: Callable[[pl.LightningModule, ExperimentConfig], list[str]]
    # monitor, mode, summary and beam metric: orchestrator/task_metrics.py


def model_settings(model: ModelConfig, architecture: type) -> dict[str, Any]:
    """The keys of the shared `model` section that this task's architecture (a dataclass
    without defaults: the section holds them) takes."""
    names = {field.name for field in dataclasses.fields(architecture)}
    return {key: value for key, value in model.model_dump().items() if key in names}


def stream_settings(config: ExperimentConfig) -> dict[str, Any]:
    """The DataModule settings every task shares; an unset shuffle buffer keeps the
    DataModule's own default, which suits its samples (BPTT windows vs sentences)."""
    data = config.data
    settings = {"batch_size": data.batch_size, "num_workers": data.num_workers,
                "batches_per_epoch": config.train.batches_per_epoch}
    if data.shuffle_buffer is not None:
        settings["shuffle_buffer"] = data.shuffle_buffer
    return settings


def media_settings(config: ExperimentConfig, kind: str) -> dict[str, Any]:
    """How a module's inputs are read (an image, or a clip's sampled frames), kept in its
    checkpoint so inference prepares a file exactly as training did."""
    return {"kind": kind, "image_size": config.data.image_size, "frames": config.data.frames}


def self_critical_settings(config: ExperimentConfig) -> dict[str, Any] | None:
    """The `train.scst` section for a generating module, when training is self-critical."""
    return config.train.scst.model_dump() if config.train.objective == "scst" else None


def decoding_settings(config: ExperimentConfig) -> dict[str, Any]:
    """The eval section as a decoding module holds it. With train.background_validation
    the epoch's own validation decodes nothing: a Ray task scores the whole split."""
    settings = config.eval.model_dump()
    if config.train.background_validation:
        settings["val_bleu_batches"] = 0
    return settings


def _language_model_data(config: ExperimentConfig) -> LanguageModelDataModule:
    return LanguageModelDataModule(config.data.path, bptt=config.data.bptt,
                                   **stream_settings(config))


def _language_model(
    config: ExperimentConfig, datamodule: LanguageModelDataModule
) -> LanguageModelTask:
    model = model_settings(config.model, RNNLanguageModelConfig)
    return LanguageModelTask(
        model=model, optim=config.optim.model_dump(), vocab=datamodule.tokenizer.tokens,
        level=datamodule.tokenizer.level, carry_hidden=config.data.carry_hidden,
    )


def _generated_text(module: LanguageModelTask, config: ExperimentConfig) -> list[str]:
    """One sample per prompt, each saying its prompt, temperature, length and seed."""
    settings = config.generate
    return [
        module.sample_text(prompt, settings.length, settings.temperature, seed=config.seed)
        for prompt in settings.prompts
    ]


def _sentiment_data(config: ExperimentConfig) -> ClassificationDataModule:
    return ClassificationDataModule(config.data.path, max_tokens=config.data.max_tokens,
                                    **stream_settings(config))


def _sentiment(config: ExperimentConfig, datamodule: ClassificationDataModule) -> SentimentTask:
    """The module to train. Pretrained vectors are read here, once per worker, and handed
    over as a tensor: only training builds modules through this function, so evaluating a
    checkpoint (load_task_module) never needs the vectors file."""
    model = model_settings(config.model, RNNClassifierConfig)
    vocab = datamodule.tokenizer.tokens
    pretrained = {}
    if config.model.vectors is not None:
        check_vectors(config.model.vectors, config.model.embedding_dim)
        weight, coverage = embedding_matrix(vocab, config.model.vectors)
        pretrained = {"pretrained_embedding": weight, "vectors_coverage": coverage}
    return SentimentTask(model=model, optim=config.optim.model_dump(), vocab=vocab,
                         labels=datamodule.labels, **pretrained)


def _translation_data(config: ExperimentConfig) -> TranslationDataModule:
    return TranslationDataModule(config.data.path, max_tokens=config.data.max_tokens,
                                 seed=config.seed, **stream_settings(config))


def _translation(
    config: ExperimentConfig, datamodule: TranslationDataModule
) -> TranslationTask:
    return TranslationTask(
        model=model_settings(config.model, Seq2SeqConfig), optim=config.optim.model_dump(),
        eval_settings=decoding_settings(config), label_smoothing=config.model.label_smoothing,
        source_vocab=datamodule.source_vocab.tokens, target_vocab=datamodule.target_vocab.tokens,
        text=datamodule.manifest.text or {}, text_models=datamodule.text_models,
        scheduled_sampling=config.train.scheduled_sampling.model_dump(),
        self_critical=self_critical_settings(config),
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
    return CAPTIONERS[kind](
        model=model_settings(config.model, architecture), optim=config.optim.model_dump(),
        eval_settings=decoding_settings(config), vocab=datamodule.vocab.tokens,
        media=media_settings(config, kind),
        scheduled_sampling=config.train.scheduled_sampling.model_dump(),
        self_critical=self_critical_settings(config),
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


def _frame_label_data(config: ExperimentConfig) -> FrameLabelDataModule:
    return FrameLabelDataModule(config.data.path, image_size=config.data.image_size,
                                frames=config.data.frames, **stream_settings(config))


def _frame_classifier(config: ExperimentConfig,
                      datamodule: FrameLabelDataModule) -> FrameClassificationTask:
    return FrameClassificationTask(
        model=model_settings(config.model, FrameClassifierConfig),
        optim=config.optim.model_dump(), labels=datamodule.labels,
        media=media_settings(config, "video"),
    )


def _labelled_test_clips(module: FrameClassificationTask, config: ExperimentConfig) -> list[str]:
    """The frame labels of the first few test clips, as `id<TAB>label label ...`."""
    batch = next(iter(_frame_label_data(config).test_dataloader()), None)
    if batch is None:
        return []
    labelled = module.label_frames(batch["frames"][:4])
    return [f"{item}\t{' '.join(labels)}" for item, labels in zip(batch["ids"], labelled,
                                                                   strict=False)]


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
    "video_frame_classification": TaskSpec(
        module_class=FrameClassificationTask,
        build_datamodule=_frame_label_data,
        build_module=_frame_classifier,
        samples=_labelled_test_clips,
    ),
}


def load_task_module(checkpoint: Path, tasks: Sequence[str]) -> pl.LightningModule:
    """The trained module a checkpoint holds (read weights-only), in eval mode; `tasks`
    are those the caller can use."""
    return module_from_checkpoint(read_checkpoint(checkpoint), checkpoint, tasks)


def _without_weight_files(hyper_parameters: dict[str, Any]) -> dict[str, Any]:
    """The settings minus the pretrained encoder's weights file: the checkpoint holds the
    trained weights, and the machine that reads it need not have that file or package."""
    model = hyper_parameters.get("model")
    if not isinstance(model, dict) or model.get("encoder_weights") is None:
        return hyper_parameters
    return {**hyper_parameters, "model": {**model, "encoder_weights": None}}


def single_pass_trainer(accelerator: str, progress_bar: bool = False) -> pl.Trainer:
    """A Trainer for one test or validation pass in this process, without Ray (`orchestrator
    eval`, background validation). No Lightning logger: MLFlowLogger would set this
    process's (and its children's) tracking URI; callers write to MLflow through a client."""
    return pl.Trainer(
        accelerator=accelerator, devices=1, logger=False, enable_checkpointing=False,
        enable_model_summary=False, enable_progress_bar=progress_bar,
        use_distributed_sampler=False,  # the readers split shards themselves
    )


def module_from_checkpoint(stored: dict[str, Any], checkpoint: Path,
                           tasks: Sequence[str]) -> pl.LightningModule:
    """The module built from a read checkpoint's hyperparameters and weights."""
    task = stored.get(CONFIG_KEY, {}).get("task")
    if task is None and len(tasks) == 1:  # written before checkpoints carried their config
        task = tasks[0]
    if task not in tasks:
        raise OrchestratorError(
            f"checkpoint {checkpoint} holds a {task or 'model of an unknown task'}; "
            f"this command needs {' or '.join(tasks)}"
        )
    try:
        module = TASKS[task].module_class(**_without_weight_files(stored["hyper_parameters"]))
        module.load_state_dict(stored["state_dict"])
    except (TypeError, RuntimeError) as exc:  # settings or weights of another version
        reason = " ".join(str(exc).split())[:200]
        raise OrchestratorError(f"checkpoint {checkpoint} does not fit this version's "
                                f"{task} model ({reason})") from None
    return module.eval()


# The hyperparameters that say what a model's ids mean: equal shapes are not enough.
TOKEN_KEYS = ("vocab", "source_vocab", "target_vocab", "labels")


def load_initial_weights(module: pl.LightningModule, config: ExperimentConfig) -> None:
    """train.init_from: the weights (only) of another run's checkpoint, read weights-only,
    into a module built from this run's config. A checkpoint of another task, vocabulary
    or model shape is refused, naming what differs."""
    try:
        path = checkpoint_file(config.train.init_from)
        stored = read_checkpoint(path)
    except OrchestratorError as exc:
        raise OrchestratorError(f"train.init_from: {exc}") from None
    task = stored.get(CONFIG_KEY, {}).get("task")
    if task != config.task:
        raise OrchestratorError(f"train.init_from={path} holds a "
                                f"{task or 'model of an unknown task'} checkpoint; this run's "
                                f"task is {config.task}")
    stored_settings = stored.get("hyper_parameters", {})
    differing = [key for key in TOKEN_KEYS
                 if key in module.hparams and stored_settings.get(key) != module.hparams[key]]
    if differing:
        raise OrchestratorError(
            f"train.init_from={path}: its {', '.join(differing)} differs from data.path "
            f"{config.data.path}'s; start from a checkpoint trained on the same vocabulary")
    try:
        module.load_state_dict(stored["state_dict"])
    except RuntimeError as exc:  # missing, unexpected or differently shaped weights
        reason = " ".join(str(exc).split())[:300]
        raise OrchestratorError(f"train.init_from={path} does not fit this run's model "
                                f"settings ({reason})") from None


def load_ensemble(checkpoints: Sequence[Path], tasks: Sequence[str]) -> pl.LightningModule:
    """The first checkpoint's module, decoding with every checkpoint's model as one
    ensemble (lightning_modules/ensemble.py); one checkpoint is just its module."""
    return join_ensemble([load_task_module(path, tasks) for path in checkpoints], checkpoints)


def join_ensemble(modules: Sequence[pl.LightningModule],
                  checkpoints: Sequence[Path]) -> pl.LightningModule:
    """The first module with all the modules' models as its model. The members must read
    the same input and write the same tokens, or averaging their probabilities is
    meaningless: a different task, vocabulary or text processing is refused."""
    first, first_path = modules[0], checkpoints[0]
    if len(modules) == 1:
        return first
    keys = getattr(first, "VOCABULARY_KEYS", None)
    if keys is None:
        raise OrchestratorError(f"checkpoint {first_path} holds a model that does not decode; "
                                "ensembles are for translation and captioning checkpoints")
    for module, path in zip(modules[1:], checkpoints[1:], strict=True):
        differing = [key for key in keys if module.hparams.get(key) != first.hparams.get(key)]
        if type(module) is not type(first) or differing:
            what = ", ".join(differing) or "task"
            raise OrchestratorError(
                f"checkpoint {path} cannot join an ensemble with {first_path}: its {what} "
                "differs; the members of an ensemble share one task and vocabulary")
    first.model = Ensemble([module.model for module in modules]).eval()
    return first

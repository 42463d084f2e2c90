"""A run logs as params only the config keys its task reads."""

from __future__ import annotations

import dataclasses

import pytest

from orchestrator.config import ModelConfig, flatten, load_config
from orchestrator.task_params import applies, task_params
from orchestrator.worker.tasks import (
    FrameClassifierConfig,
    ImageCaptionerConfig,
    RNNClassifierConfig,
    RNNLanguageModelConfig,
    Seq2SeqConfig,
    VideoCaptionerConfig,
)

ARCHITECTURES = {
    "language_model": RNNLanguageModelConfig, "translation": Seq2SeqConfig,
    "sentiment": RNNClassifierConfig, "image_captioning": ImageCaptionerConfig,
    "video_captioning": VideoCaptionerConfig,
    "video_frame_classification": FrameClassifierConfig,
}
# read outside the architecture dataclass: the task builder passes them on its own
READ_BESIDE = {"translation": {"label_smoothing"}, "sentiment": {"vectors"}}


@pytest.mark.parametrize("task", sorted(ARCHITECTURES))
def test_model_keys_are_those_the_task_architecture_takes(task):
    fields = {field.name for field in dataclasses.fields(ARCHITECTURES[task])}
    expected = (fields & set(ModelConfig.model_fields)) | READ_BESIDE.get(task, set())
    logged = {key for key in ModelConfig.model_fields if applies(f"model.{key}", task)}
    assert logged == expected


def test_a_language_model_run_lists_no_captioning_or_decoding_keys():
    params = task_params(load_config(None, ["task=language_model"]))
    assert "model.encoder" not in params and "data.image_size" not in params
    assert not any(key.startswith("eval.") for key in params)
    assert params["generate.temperature"] == 0.8 and params["data.bptt"] == 64
    assert len(params) < len(flatten(load_config(None))) - 20


def test_the_most_specific_rule_decides():
    assert applies("eval.beam_sizes", "translation")
    assert not applies("eval.meteor", "translation")  # captioning's, inside eval.
    assert applies("eval.meteor", "image_captioning")
    assert applies("generate.prompts", "sentiment") and not applies("generate.length",
                                                                    "sentiment")
    assert applies("optim.lr", "sentiment")  # shared: no rule names it

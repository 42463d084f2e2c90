"""`orchestrator eval` takes only overrides that can change a checkpoint's evaluation."""

from __future__ import annotations

import re

import pytest

from orchestrator.config import load_config
from orchestrator.errors import OrchestratorError
from orchestrator.evaluate import refuse_ineffective_overrides


@pytest.mark.parametrize("task, override", [
    ("language_model", "data.batch_size=8"),
    ("language_model", "tracking.experiment=rescored"),
    ("translation", "eval.beam_sizes=[1,5,10]"),
    ("image_captioning", "eval.meteor=false"),
    ("sentiment", "train.progress_bar=false"),
])
def test_overrides_that_change_the_evaluation_pass(task, override):
    refuse_ineffective_overrides(load_config(None, [f"task={task}"]), [override])


@pytest.mark.parametrize("task, override", [
    ("translation", "model.hidden_size=64"),  # the weights fix the model
    ("language_model", "optim.lr=1"),
    ("language_model", "data.carry_hidden=false"),  # stored with the module
    ("language_model", "eval.beam_sizes=[5]"),  # a language model does not decode
    ("sentiment", "ray.num_workers=4"),  # eval runs in one process, no Ray
])
def test_overrides_that_cannot_take_effect_are_refused_naming_the_key(task, override):
    with pytest.raises(OrchestratorError, match=re.escape(f"override {override!r} cannot")):
        refuse_ineffective_overrides(load_config(None, [f"task={task}"]), [override])

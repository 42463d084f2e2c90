"""A generating task's eval settings change only through `set_eval_settings`."""

from __future__ import annotations

import pytest

from orchestrator.config import EvalConfig
from orchestrator.lightning_modules.eval_settings import EvalSettings, EvaluatedWithSettings


class Decoder(EvaluatedWithSettings):
    def __init__(self) -> None:
        self.eval_settings = EvalSettings(**EvalConfig().model_dump())


def test_set_eval_settings_replaces_only_the_named_keys():
    decoder = Decoder()
    before = decoder.eval_settings
    decoder.set_eval_settings(alpha=1.0, beam_sizes=[3])
    assert decoder.eval_settings.alpha == 1.0 and decoder.eval_settings.beam_sizes == [3]
    assert decoder.eval_settings.max_length == before.max_length
    assert before.alpha == EvalConfig().alpha  # the old settings object is unchanged


def test_an_unknown_setting_is_refused_by_name():
    with pytest.raises(ValueError, match="unknown eval settings beam_size "):
        Decoder().set_eval_settings(beam_size=5)


def test_the_settings_hold_every_key_of_the_eval_section():
    assert set(EvalSettings.__dataclass_fields__) == set(EvalConfig.model_fields)

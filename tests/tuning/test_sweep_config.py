"""Sweep files checked before anything starts: axes a model cannot take, beam on a task
that does not decode, the shipped sweeps; evaluation axes expand to test passes; a trial
actor starts without torch."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from orchestrator.cli import main
from orchestrator.sweep.driver import check_sweep
from orchestrator.tuning.evaluation_axes import beam_sizes, evaluation_variants, variant_prefix
from orchestrator.tuning.search_space import expected_models
from orchestrator.tuning.sweep_config import SweepConfig, load_sweep

CELLS, CLIPS, BEAMS = ["rnn", "gru", "lstm"], [0.5, 5.0], [1, 3, 5, 10]


def write_sweep(folder: Path, name: str, task_overrides: dict, space: dict, **extra) -> Path:
    spec = {
        "name": name,
        "overrides": {
            "train.progress_bar": False, "model.num_layers": 1, "data.num_workers": 1,
            "tracking.uri": f"sqlite:///{folder}/mlflow.db", **task_overrides,
        },
        "space": space,
        "max_concurrent_trials": 2,
        "resources": {"workers_per_trial": 1, "cpus_per_worker": 1},
        "storage_path": str(folder / "sweeps"),
        **extra,
    }
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def test_pbt_refuses_axes_a_training_model_cannot_change(tmp_path, capsys):
    path = write_sweep(tmp_path, "pbt-cell", {}, {"model.cell": {"grid": ["gru", "lstm"]}},
                       scheduler={"name": "pbt"})
    assert main(["sweep", str(path)]) == 2
    err = capsys.readouterr().err
    assert "space.model.cell" in err and "optim.lr" in err and "asha" in err


def test_bad_axis_fails_in_one_line_before_anything_starts(tmp_path, capsys):
    path = write_sweep(tmp_path, "bad", {}, {"model.cel": {"grid": ["gru"]}})
    assert main(["sweep", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0
    assert "space.model.cel" in err and "did you mean model.cell" in err
    assert not (tmp_path / "sweeps").exists()


def test_beam_axis_on_a_task_that_does_not_decode_is_refused(tmp_path, capsys):
    path = write_sweep(tmp_path, "lm-beam", {}, {"model.cell": {"grid": ["gru"]}},
                       evaluate={"eval.beam_size": [1, 5]})
    assert main(["sweep", str(path)]) == 2
    assert "task language_model does not decode" in capsys.readouterr().err


@pytest.mark.parametrize("where", ["overrides", "space"])
def test_background_validation_is_refused_in_a_sweep(where, tmp_path, capsys):
    task = {"task": "translation", "data.sample": "dates"}
    if where == "overrides":
        path = write_sweep(tmp_path, "bg", {**task, "train.background_validation": True},
                           {"model.cell": {"grid": ["gru"]}})
    else:
        path = write_sweep(tmp_path, "bg", task,
                           {"train.background_validation": {"grid": [False, True]}})
    assert main(["sweep", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0
    assert "train.background_validation cannot be swept or set in a sweep" in err
    assert not (tmp_path / "sweeps").exists()


SHIPPED_SWEEPS = sorted((Path(__file__).parents[2] / "configs" / "sweeps").glob("*.yaml"))


@pytest.mark.parametrize("path", SHIPPED_SWEEPS, ids=lambda path: path.name)
def test_shipped_sweep_configs_are_valid(path):
    base = check_sweep(load_sweep(path))
    assert base.task in {"language_model", "translation", "image_captioning"}


def test_evaluation_axes_expand_to_test_passes_not_models():
    sweep = SweepConfig.model_validate({
        "name": "x", "space": {"model.cell": {"grid": CELLS}, "optim.lr": {"choice": [1, 2]}},
        "evaluate": {"eval.beam_size": BEAMS, "eval.alpha": [0.6, 1.0],
                     "eval.length_penalty": ["gnmt", "average"]},
        "num_samples": 2,
    })
    assert expected_models(sweep) == 3 * 2  # grid x num_samples; choice is drawn per sample
    assert beam_sizes(sweep) == BEAMS  # one test pass decodes every beam size
    variants = evaluation_variants(sweep)
    assert len(variants) == 4  # one test pass per other combination
    assert {variant_prefix(v) for v in variants} == {
        "alpha_0.6-length_penalty_gnmt/", "alpha_0.6-length_penalty_average/",
        "alpha_1.0-length_penalty_gnmt/", "alpha_1.0-length_penalty_average/"}
    assert variant_prefix({}) == ""


def test_a_trial_actor_imports_neither_torch_nor_lightning_to_start():
    """Every trial starts a fresh actor; importing the task registry there cost ~5 s."""
    probe = ("import sys, orchestrator.sweep.trial; "
             "print(sorted({'torch', 'pytorch_lightning', 'matplotlib'} & set(sys.modules)))")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "[]"

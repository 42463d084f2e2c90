"""Config validation: every bad input gives one line naming the key, value and choices,
and nothing starts (no Ray, no MLflow store)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import ray

from orchestrator.cli import main
from orchestrator.config import ExperimentConfig, flatten, load_config

BAD_CONFIGS = [
    (["model.cell=lstn"], "model.cell must be one of rnn, gru, lstm (got 'lstn')"),
    (["model.hidden_sise=32"],
     "unknown key model.hidden_sise in model; did you mean model.hidden_size?"),
    (["modle.cell=gru"], "unknown key modle in the config; did you mean model?"),
    (["optim.lr=-1"], "optim.lr: input should be greater than 0 (got -1)"),
    (["train.max_epochs=many"], "train.max_epochs: input should be a valid integer"),
    (["optim.clip_mode=l2"], "optim.clip_mode must be one of norm, value (got 'l2')"),
    (["ray.num_workers=0"], "ray.num_workers: input should be greater than or equal to 1"),
    (["model.dropout=1.5"], "model.dropout: input should be less than 1"),
    (["task=summarise"],
     "task must be one of language_model, sentiment, translation, image_captioning, "
     "video_captioning, video_frame_classification (got 'summarise')"),
    (["task=sentiment", "data.sample=grammar"],
     "data.sample grammar is a language_model dataset; task sentiment uses data.sample=first_word"),
    (["model.bidirectional=true"], "model.bidirectional=true cannot predict the next token"),
    (["model.pooling=avg"], "model.pooling must be one of last, max, mean (got 'avg')"),
    (["model.tie_weights=true", "model.embedding_dim=256"],
     "model.tie_weights needs model.embedding_dim <= model.hidden_size (got 256 and 128)"),
    (["model.cell"], "'model.cell' is neither a config file nor a key=value override"),
    (["=gru"], "override '=gru' must look like key=value"),
    (["missing.yaml"], "config file missing.yaml does not exist"),
    (["data.path=nowhere", "data.sample=null"], "has no dataset.json; make one with"),
    (["tracking.uri=http://127.0.0.1:9"], "cannot reach the MLflow tracking server at"),
    (["ray.gpus_per_worker=1"], "ray.gpus_per_worker > 0 needs ray.use_gpu=true"),
    (["train.background_validation=true"],
     "train.background_validation decodes the validation split, so it is for tasks "
     "translation, image_captioning, video_captioning (got task language_model)"),
    (["train.background_validation=true", "task=translation", "data.sample=dates",
      "train.average_last=3"],
     "train.average_last validates the averaged weights inside the run; with "
     "train.background_validation=true set it to 1"),
]


@pytest.mark.parametrize("items,message", BAD_CONFIGS, ids=[b[0][0] for b in BAD_CONFIGS])
def test_bad_config_gives_one_line_error_and_starts_nothing(items, message, in_tmp, capsys):
    assert main(["launch", *items]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0, err
    assert err.startswith("error: ")
    assert message in err
    assert not ray.is_initialized()
    assert not (in_tmp / "mlflow.db").exists()
    assert not (in_tmp / "runs").exists()


def test_cli_error_is_one_line_on_stderr_with_exit_2(in_tmp):
    out = subprocess.run(
        [sys.executable, "-m", "orchestrator.cli", "launch", "model.cell=lstn"],
        capture_output=True, text=True, timeout=120,
    )
    assert out.returncode == 2
    assert out.stderr.strip() == (
        "error: model.cell must be one of rnn, gru, lstm (got 'lstn')"
    )


def test_yaml_file_and_overrides_merge(tmp_path: Path):
    path = tmp_path / "exp.yaml"
    path.write_text("model:\n  cell: gru\n  hidden_size: 32\noptim:\n  lr: 0.1\n")
    config = load_config(path, ["model.hidden_size=48", "data.carry_hidden=false"])
    assert config.model.cell == "gru"
    assert config.model.hidden_size == 48
    assert config.optim.lr == 0.1
    assert config.data.carry_hidden is False
    assert config.model.num_layers == ExperimentConfig().model.num_layers


def test_shipped_configs_validate():
    configs = sorted(Path(__file__).parents[2].joinpath("configs").glob("*.yaml"))
    assert configs, "configs/ holds the quickstart, tiny-shakespeare and PTB configs"
    for path in configs:
        load_config(path)


def test_flatten_gives_dotted_keys():
    flat = flatten(ExperimentConfig())
    assert flat["model.cell"] == "lstm"
    assert flat["ray.num_workers"] == 2

"""train.init_from: a run starts from another run's weights, read weights-only; a checkpoint
that does not fit (missing, of another task, vocabulary or model shape, or holding code) is
refused in one line naming train.init_from, before any run or Ray process starts."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from mlflow.tracking import MlflowClient

from orchestrator.cli import main
from orchestrator.config import ExperimentConfig, load_config
from orchestrator.errors import OrchestratorError
from orchestrator.inputs import check_initial_weights, ensure_dataset
from orchestrator.run_files import CONFIG_KEY
from orchestrator.worker.tasks import TASKS, load_initial_weights


def _overrides(shape_captions: Path, tmp_path: Path, *extra: str) -> list[str]:
    return ["task=image_captioning", f"data.path={shape_captions}", "data.image_size=32",
            "model.embedding_dim=16", "model.hidden_size=32", "model.num_layers=1",
            f"tracking.uri=sqlite:///{tmp_path}/mlflow.db", f"ray.storage_path={tmp_path}/runs",
            *extra]


def _save(config: ExperimentConfig, path: Path, vocab: list[str] | None = None) -> Path:
    """A checkpoint as a Train worker writes it, of a module built from `config`."""
    task = TASKS[config.task]
    datamodule = task.build_datamodule(config)
    if vocab is not None:
        datamodule.vocab.tokens[:] = vocab
    module = task.build_module(config, datamodule)
    torch.save({"state_dict": module.state_dict(), "hyper_parameters": dict(module.hparams),
                CONFIG_KEY: config.model_dump()}, path)
    return path


def test_a_run_starts_from_the_checkpoints_weights(shape_captions, tmp_path):
    source = load_config(None, _overrides(shape_captions, tmp_path, "seed=1"))
    saved = _save(source, tmp_path / "source.ckpt")
    config = load_config(None, _overrides(shape_captions, tmp_path, f"train.init_from={saved}",
                                          "seed=2", "model.dropout=0.3"))
    task = TASKS[config.task]
    module = task.build_module(config, task.build_datamodule(config))
    load_initial_weights(module, config)
    stored = torch.load(saved, weights_only=True)["state_dict"]
    assert all(torch.equal(value, stored[key]) for key, value in module.state_dict().items())


def _refusal(shape_captions: Path, tmp_path: Path, init_from: Path, *extra: str) -> str:
    config = load_config(None, _overrides(shape_captions, tmp_path,
                                          f"train.init_from={init_from}", *extra))
    ensure_dataset(config)
    with pytest.raises(OrchestratorError) as refused:
        check_initial_weights(config)
    message = str(refused.value)
    assert "\n" not in message and "train.init_from" in message
    return message


def test_a_checkpoint_that_does_not_fit_is_refused_saying_why(shape_captions, tmp_path):
    assert "does not exist" in _refusal(shape_captions, tmp_path, tmp_path / "nosuch.ckpt")
    markov = load_config(None, ["model.hidden_size=16", "model.embedding_dim=8"])
    language_model = tmp_path / "lm.ckpt"
    torch.save({"state_dict": {}, "hyper_parameters": {},
                CONFIG_KEY: markov.model_dump()}, language_model)
    assert "holds a language_model checkpoint; this run's task is image_captioning" in \
        _refusal(shape_captions, tmp_path, language_model)

    source = load_config(None, _overrides(shape_captions, tmp_path))
    saved = _save(source, tmp_path / "captioner.ckpt")
    wider = _refusal(shape_captions, tmp_path, saved, "model.hidden_size=48")
    assert "does not fit this run's model settings (" in wider and "size mismatch" in wider
    vocab = TASKS[source.task].build_datamodule(source).vocab.tokens
    swapped = [*vocab[:-2], vocab[-1], vocab[-2]]  # same size, two words' ids swapped
    other_words = _save(source, tmp_path / "other_words.ckpt", swapped)
    assert "its vocab differs from data.path" in _refusal(shape_captions, tmp_path,
                                                         other_words)


class Payload:
    def __reduce__(self):
        return (Path.touch, (Path("/tmp/init_from_payload_ran"),))


def test_a_checkpoint_holding_code_is_refused_and_its_code_never_runs(shape_captions,
                                                                      tmp_path):
    ran = Path("/tmp/init_from_payload_ran")
    ran.unlink(missing_ok=True)
    hostile = tmp_path / "hostile.ckpt"
    torch.save({"state_dict": {}, "payload": Payload()}, hostile)  # pickles the payload
    assert "holds more than weights" in _refusal(shape_captions, tmp_path, hostile)
    assert not ran.exists()


def test_launch_refuses_before_any_run_starts(shape_captions, tmp_path, capsys):
    code = main(["launch", *_overrides(shape_captions, tmp_path, "train.objective=scst",
                                        f"train.init_from={tmp_path / 'nosuch.ckpt'}")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "train.init_from" in err, err
    client = MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")
    assert client.search_experiments() == [] or not client.search_runs(
        [e.experiment_id for e in client.search_experiments()])

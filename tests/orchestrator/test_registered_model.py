"""The best checkpoint as a registered MLflow model: a pyfunc made from code that reads
the checkpoint weights-only and answers like the CLI; the alias follows the better run;
`models:/NAME@ALIAS` works wherever a checkpoint file does, and a bad one is one line."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import mlflow.artifacts
import mlflow.models
import mlflow.pyfunc
import pandas as pd
import pytest
import torch
from mlflow.tracking import MlflowClient

from orchestrator import tracking
from orchestrator.cli import main
from orchestrator.config import EvalConfig, OptimConfig, load_config
from orchestrator.errors import OrchestratorError
from orchestrator.lightning_modules.captioning import CAPTIONERS
from orchestrator.lightning_modules.frame_classification import FrameClassificationTask
from orchestrator.lightning_modules.frame_classifier import FrameClassifierConfig
from orchestrator.lightning_modules.image_captioner import ImageCaptionerConfig
from orchestrator.lightning_modules.video_captioner import VideoCaptionerConfig
from orchestrator.registered_model import (
    SCORE_TAG,
    input_example,
    log_best_model,
    resolve_checkpoint,
)
from orchestrator.run_files import CONFIG_KEY
from orchestrator.worker.tasks import load_task_module
from tests.concurrent_alias import point_alias_from_processes
from tests.models import settings
from tests.orchestrator.test_checkpoints import Payload
from tests.registered_models import EXPERIMENT, dates_checkpoint, dates_config, logged_run


@pytest.fixture
def store(tmp_path, monkeypatch) -> str:
    """A sqlite tracking store in the working directory, where `models:/` URIs resolve
    (through $MLFLOW_TRACKING_URI, as a user's shell gives it), for MLflow's own loaders too."""
    monkeypatch.chdir(tmp_path)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.delenv("MLFLOW_REGISTRY_URI", raising=False)
    # a URI another test set in this process must not win over the variable
    monkeypatch.setattr(mlflow.tracking._tracking_service.utils, "_tracking_uri", None)
    monkeypatch.setattr(mlflow.tracking._model_registry.utils, "_registry_uri", None)
    return uri


@pytest.fixture(scope="module")
def dates(tmp_path_factory) -> tuple[Path, list[tuple[str, str]]]:
    return dates_checkpoint(tmp_path_factory)


def translate_command(checkpoint: str, sentences: list[str], tmp_path: Path, capsys) -> list[str]:
    """What `orchestrator translate CHECKPOINT --beam-size 3` prints for `sentences`."""
    source = tmp_path / "source.txt"
    source.write_text("\n".join(sentences) + "\n")
    capsys.readouterr()
    assert main(["translate", checkpoint, "--beam-size", "3", "--input", str(source)]) == 0
    return capsys.readouterr().out.splitlines()


def test_the_model_by_alias_translates_as_the_translate_command_does(
        store, dates, tmp_path, capsys):
    checkpoint, pairs = dates
    _, version = logged_run(store, dates_config(checkpoint.parent / "shards"), checkpoint,
                            {"val_bleu": 80.0})
    assert version == "1"
    sources = [source for source, _ in pairs[:20]]
    model = mlflow.pyfunc.load_model(f"models:/{EXPERIMENT}@best")
    served = model.predict(pd.DataFrame({"text": sources}), params={"beam_size": 3})
    assert served == translate_command(str(checkpoint), sources, tmp_path, capsys)
    assert served == translate_command(f"models:/{EXPERIMENT}@best", sources, tmp_path, capsys)
    right = sum(output == target for output, (_, target) in zip(served, pairs, strict=False))
    # it really translates (an untrained model gets none right); the 4-epoch model gets
    # 8 to over 10 of 20 in the runs seen: the loader's shuffling varies between runs
    assert right >= 5, list(zip(sources, served, strict=True))
    # a dict of lists, as a Python caller writes it, is rows too
    assert model.predict({"text": sources[:2]}, params={"beam_size": 3}) == served[:2]


def test_eval_scores_a_registered_model(store, dates, capsys):
    checkpoint, _ = dates
    logged_run(store, dates_config(checkpoint.parent / "shards"), checkpoint, {"val_bleu": 80.0})
    capsys.readouterr()
    assert main(["eval", f"models:/{EXPERIMENT}/1", "eval.beam_sizes=[1]"]) == 0
    assert "test_bleu_beam1" in capsys.readouterr().out


def test_the_logged_model_has_a_signature_an_example_and_pinned_requirements(store, dates):
    checkpoint, _ = dates
    logged_run(store, dates_config(checkpoint.parent / "shards"), checkpoint, {"val_bleu": 80.0})
    folder = Path(mlflow.artifacts.download_artifacts(f"models:/{EXPERIMENT}/1"))
    info = mlflow.models.get_model_info(f"models:/{EXPERIMENT}/1")
    assert info.signature.inputs.input_names() == ["text"]
    assert info.signature.params.to_dict()[0]["name"] == "beam_size"
    example = json.loads((folder / "serving_input_example.json").read_text())
    assert example["dataframe_split"]["data"] == [["20 june 1965"]]
    assert not list(folder.rglob("*.pkl"))  # nothing pickled: the model is code
    assert (folder / "pyfunc_model.py").is_file()
    assert (folder / "artifacts" / "checkpoint.ckpt").is_file()
    requirements = (folder / "requirements.txt").read_text().split()
    assert any(line.startswith("torch==") for line in requirements)
    assert any(line.startswith("rnn-orchestrator==") for line in requirements)


@pytest.mark.parametrize("task, monitor, scores, holders", [
    ("translation", "val_bleu", [50.0, 40.0, 60.0], [1, 1, 3]),  # higher is better
    ("language_model", "val_perplexity", [5.0, 7.0, 3.0], [1, 1, 3]),  # lower is
])
def test_the_alias_moves_to_a_better_run_and_stays_on_a_worse_one(
        store, language_model, task, monitor, scores, holders):
    config = load_config(None, [f"task={task}", "tracking.experiment=moving"])
    client = MlflowClient(store)
    for score, holder in zip(scores, holders, strict=True):
        logged_run(store, config, language_model, {monitor: score})  # the file is not read
        assert client.get_registered_model("moving").aliases == {"best": holder}


def test_runs_that_register_at_the_same_moment_leave_the_alias_on_the_best(store):
    """A sweep's trials end together, each in its own process. Two writes of the alias at
    the same moment once failed a trial (a unique key in the store)."""
    client = MlflowClient(store)
    scores = [30.0, 70.0, 50.0, 10.0, 60.0, 20.0]
    client.create_registered_model("together")
    versions = []
    for score in scores:  # registered one by one; the alias is not set yet
        run_id = tracking.start_run(store, "together", "run", {"task": "translation"})
        versions.append(client.create_model_version(
            "together", source="unused", run_id=run_id,
            tags={"task": "translation", SCORE_TAG: repr(score)}).version)
    assert point_alias_from_processes(store, "together", versions, "translation") == [0] * 6
    assert client.get_registered_model("together").aliases == {"best": 2}


def test_a_deleted_run_gives_the_alias_up_to_the_best_run_left(store, language_model):
    config = load_config(None, ["task=translation", "tracking.experiment=deleting"])
    client = MlflowClient(store)
    logged_run(store, config, language_model, {"val_bleu": 40.0})
    best_run, _ = logged_run(store, config, language_model, {"val_bleu": 60.0})
    assert client.get_registered_model("deleting").aliases == {"best": 2}
    client.delete_run(best_run)  # its version stays in the registry, tagged with its score
    logged_run(store, config, language_model, {"val_bleu": 30.0})
    assert client.get_registered_model("deleting").aliases == {"best": 1}


def test_the_best_epoch_counts_not_the_last(store, language_model):
    """The logged model is the best checkpoint, so a run is judged by its best value."""
    config = load_config(None, ["task=translation", "tracking.experiment=epochs"])
    client = MlflowClient(store)
    logged_run(store, config, language_model, {"val_bleu": 60.0})
    run_id = tracking.start_run(store, "epochs", "run", {"task": "translation"})
    for step, value in enumerate([10.0, 70.0, 30.0]):  # last 30, best 70
        client.log_metric(run_id, "val_bleu", value, step=step)
    assert log_best_model(store, run_id, config, language_model) == "2"
    assert client.get_registered_model("epochs").aliases == {"best": 2}


def test_a_run_of_another_task_gives_way_and_no_register_keeps_the_registry(
        store, language_model):
    client = MlflowClient(store)
    logged_run(store, load_config(None, ["task=translation", "tracking.experiment=shared"]),
               language_model, {"val_bleu": 90.0})
    logged_run(store, load_config(None, ["tracking.experiment=shared"]), language_model,
               {"val_perplexity": 9.0})  # perplexity is no BLEU: not comparable
    assert client.get_registered_model("shared").aliases == {"best": 2}
    config = load_config(None, ["tracking.experiment=shared", "tracking.register_model=false"])
    run_id, version = logged_run(store, config, language_model, {"val_perplexity": 1.0})
    assert version is None and len(client.search_model_versions("name = 'shared'")) == 2
    assert client.get_run(run_id).outputs.model_outputs  # the model is logged all the same


def test_logging_writes_to_the_given_store_only(tmp_path, monkeypatch, language_model):
    """A launch's `tracking.uri` is passed in, never set process-wide: MLflow's own
    default store (here the variable's) must stay untouched."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'elsewhere.db'}")
    monkeypatch.setattr(mlflow.tracking._tracking_service.utils, "_tracking_uri", None)
    uri = f"sqlite:///{tmp_path / 'given.db'}"
    _, version = logged_run(uri, load_config(None, ["tracking.experiment=lm"]),
                            language_model, {})
    assert version == "1" and MlflowClient(uri).get_model_version_by_alias("lm", "best")
    assert not (tmp_path / "elsewhere.db").exists()


def test_generate_and_the_pyfunc_sample_the_same_text(store, language_model, capsys):
    logged_run(store, load_config(None, ["tracking.experiment=lm"]), language_model, {})
    capsys.readouterr()
    assert main(["generate", "models:/lm@best", "--prompt", "ab", "--length", "12"]) == 0
    printed = capsys.readouterr().out.rstrip("\n")
    model = mlflow.pyfunc.load_model("models:/lm@best")
    answer = model.predict(pd.DataFrame({"prompt": ["ab"]}), params={"length": 12})
    module = load_task_module(language_model, ["language_model"])
    assert answer == [printed] == [module.generate_text("ab", 12, 0.8, seed=0)]


@pytest.mark.parametrize("kind, suffix", [("image", ".png"), ("video", ".mp4")])
def test_a_captioner_captions_the_logged_example_as_the_caption_command_does(
        store, tmp_path, kind, suffix, capsys):
    torch.manual_seed(0)
    architecture = VideoCaptionerConfig if kind == "video" else ImageCaptionerConfig
    task = CAPTIONERS[kind](
        model=settings(architecture, embedding_dim=8, hidden_size=16, num_layers=1),
        optim=OptimConfig().model_dump(), eval_settings=EvalConfig(max_length=6).model_dump(),
        vocab=["<unk>", "<eos>", "<pad>", "<bos>", "a", "red", "circle"],
        media={"kind": kind, "image_size": 16, "frames": 3})
    config = load_config(None, [f"task={kind}_captioning", "tracking.experiment=captioner"])
    checkpoint = tmp_path / "captioner.ckpt"
    torch.save({"state_dict": task.state_dict(), "hyper_parameters": dict(task.hparams),
                CONFIG_KEY: config.model_dump()}, checkpoint)
    logged_run(store, config, checkpoint, {})
    example, params = input_example(config)  # the bytes of a small black image or clip
    media = tmp_path / f"black{suffix}"
    media.write_bytes(example[kind][0])
    capsys.readouterr()
    assert main(["caption", "models:/captioner@best", str(media)]) == 0
    printed = capsys.readouterr().out.strip().split("\t")[1]
    model = mlflow.pyfunc.load_model("models:/captioner@best")
    assert model.predict(example, params=params) == [printed]


def test_a_frame_classifier_labels_the_logged_example_as_label_frames_does(
        store, tmp_path, capsys):
    torch.manual_seed(0)
    task = FrameClassificationTask(
        model=settings(FrameClassifierConfig, hidden_size=16, num_layers=1),
        optim=OptimConfig().model_dump(), labels=["circle", "square"],
        media={"kind": "video", "image_size": 16, "frames": 3})
    config = load_config(None, ["task=video_frame_classification", "tracking.experiment=frames"])
    checkpoint = tmp_path / "frames.ckpt"
    torch.save({"state_dict": task.state_dict(), "hyper_parameters": dict(task.hparams),
                CONFIG_KEY: config.model_dump()}, checkpoint)
    logged_run(store, config, checkpoint, {})
    example, params = input_example(config)  # the bytes of a small black clip
    clip = tmp_path / "black.mp4"
    clip.write_bytes(example["video"][0])
    capsys.readouterr()
    assert main(["label-frames", "models:/frames@best", str(clip)]) == 0
    printed = capsys.readouterr().out.strip().split("\t")[1]
    assert len(printed.split()) == 3 and set(printed.split()) <= {"circle", "square"}
    model = mlflow.pyfunc.load_model("models:/frames@best")
    assert model.predict(example, params=params) == [printed]


@pytest.mark.parametrize("uri, message", [
    ("models:/nothing@best", "no registered model 'nothing'; registered: lm"),
    ("models:/lm@champion", "model 'lm' has no alias 'champion'; aliases: best (version 1)"),
    ("models:/lm/7", "model 'lm' has no version '7'; versions: 1"),
    ("models:/lm", "is not a registered model URI; use models:/NAME@ALIAS or"),
])
def test_a_bad_model_uri_is_one_line_naming_what_exists(
        store, language_model, uri, message, capsys):
    logged_run(store, load_config(None, ["tracking.experiment=lm"]), language_model, {})
    capsys.readouterr()
    assert main(["generate", uri]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and uri in err and len(err.splitlines()) == 1


def test_a_missing_store_is_named_and_not_created(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    with pytest.raises(OrchestratorError, match="there is no MLflow store at"):
        resolve_checkpoint("models:/lm@best")
    assert not (tmp_path / "mlflow.db").exists()


def test_a_registered_pickle_payload_is_refused_and_never_runs(store, tmp_path, capsys):
    marker = tmp_path / "payload-ran"
    evil = tmp_path / "evil.ckpt"
    torch.save({"state_dict": {}, "hyper_parameters": {}, "trap": Payload(marker)}, evil)
    logged_run(store, load_config(None, ["task=translation", "tracking.experiment=evil"]),
               evil, {"val_bleu": 99.0})
    source = tmp_path / "in.txt"
    source.write_text("ein satz\n")
    assert main(["translate", "models:/evil@best", "--input", str(source)]) == 2
    assert "was not loaded: it holds more than weights" in capsys.readouterr().err
    with pytest.raises(OrchestratorError, match="was not loaded"):
        mlflow.pyfunc.load_model("models:/evil@best")
    assert not marker.exists()


LOG_ONCE = """
import json, sys, time
from pathlib import Path
from orchestrator import tracking
from orchestrator.config import load_config
from orchestrator.registered_model import log_best_model
uri, checkpoint = sys.argv[1], Path(sys.argv[2])
config = load_config(None, ["task=translation", "tracking.experiment=timed"])
seconds = []
for _ in range(2):
    run_id = tracking.start_run(uri, "timed", "run", {})
    start = time.perf_counter()
    log_best_model(uri, run_id, config, checkpoint)
    seconds.append(time.perf_counter() - start)
print(json.dumps({"seconds": seconds, "torch": "torch" in sys.modules}))
"""


def test_logging_the_model_loads_no_torch_and_adds_little_time(store, dates):
    """The launching driver never imports torch, and each launch pays this once."""
    checkpoint, _ = dates
    done = subprocess.run([sys.executable, "-c", LOG_ONCE, store, str(checkpoint)],
                          capture_output=True, text=True, check=True, timeout=300)
    measured = json.loads(done.stdout.splitlines()[-1])
    assert not measured["torch"]
    assert max(measured["seconds"]) < 3.0, measured
    assert done.stderr.count("Downloading artifacts") == 0, done.stderr  # no progress bars

"""Checkpoints and runs for the registered-model tests: a translation model trained in
seconds on date rewriting ("17 march 2024" -> "2024 - 03 - 17"), and MLflow runs that
log a checkpoint as a registered model, as a launch does at its end."""

from __future__ import annotations

from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch
from mlflow.tracking import MlflowClient

from orchestrator import tracking
from orchestrator.cli import main
from orchestrator.config import ExperimentConfig, load_config
from orchestrator.datasets.synthetic import date_pairs
from orchestrator.datasets.translation_data import TranslationDataModule
from orchestrator.lightning_modules.seq2seq import Seq2SeqConfig
from orchestrator.lightning_modules.translation import TranslationTask
from orchestrator.registered_model import log_best_model
from orchestrator.run_files import CONFIG_KEY
from tests.models import settings

EXPERIMENT = "dates"
MODEL = {"cell": "gru", "embedding_dim": 16, "hidden_size": 32, "num_layers": 1,
         "dropout": 0.0, "bidirectional": True, "attention": "general"}
OPTIM = {"optimizer": "adam", "lr": 1e-2, "weight_decay": 0.0, "clip": 1.0,
         "clip_mode": "norm", "lr_decay": 1.0, "lr_decay_start": 0}
SEARCH = {"beam_sizes": [1, 3], "length_penalty": "gnmt", "alpha": 0.6, "max_length": 20,
          "max_length_ratio": 3.0, "no_repeat_ngram_size": 0, "ban_unk": False,
          "val_bleu_batches": 1, "meteor": False}


def dates_config(shards: Path) -> ExperimentConfig:
    """The experiment config a launch of this model would have stored in its checkpoint."""
    overrides = [f"model.{key}={value}" for key, value in MODEL.items()]
    return load_config(None, ["task=translation", f"data.path={shards}",
                              f"tracking.experiment={EXPERIMENT}", "eval.beam_sizes=[1,3]",
                              "generate.prompts=['20 june 1965']", *overrides])


def write_parallel(folder: Path, prefix: str, pairs: list[tuple[str, str]]) -> None:
    (folder / f"{prefix}.src").write_text("".join(f"{s}\n" for s, _ in pairs))
    (folder / f"{prefix}.tgt").write_text("".join(f"{t}\n" for _, t in pairs))


def dates_checkpoint(factory: pytest.TempPathFactory) -> tuple[Path, list[tuple[str, str]]]:
    """(checkpoint, held-out test pairs): trained once per test session (about 10 s on a
    CPU) and shared by the test modules that need a model that really translates."""
    folder = factory.getbasetemp() / "dates-translation"
    checkpoint = folder / "model.ckpt"
    pairs = date_pairs(1200, seed=11)
    if checkpoint.exists():
        return checkpoint, pairs[1100:]
    folder.mkdir(exist_ok=True)
    for prefix, part in (("train", pairs[:1000]), ("val", pairs[1000:1100]),
                         ("test", pairs[1100:])):
        write_parallel(folder, prefix, part)
    assert main(["data", "prepare", "translation", "-s", "src", "-t", "tgt", "--min-freq", "1",
                 "--train", str(folder / "train"), "--val", str(folder / "val"),
                 "--test", str(folder / "test"), "--out", str(folder / "shards")]) == 0
    pl.seed_everything(0, verbose=False)
    datamodule = TranslationDataModule(str(folder / "shards"), batch_size=32, num_workers=0)
    task = TranslationTask(
        model=settings(Seq2SeqConfig, **MODEL), optim=OPTIM, eval_settings=SEARCH,
        label_smoothing=0.0, source_vocab=datamodule.source_vocab.tokens,
        target_vocab=datamodule.target_vocab.tokens, text=datamodule.manifest.text,
    )
    trainer = pl.Trainer(max_epochs=4, accelerator="cpu", logger=False, limit_val_batches=0,
                         enable_progress_bar=False, enable_checkpointing=False,
                         enable_model_summary=False, gradient_clip_val=1.0)
    trainer.fit(task, datamodule=datamodule)
    torch.save({"state_dict": task.state_dict(), "hyper_parameters": dict(task.hparams),
                CONFIG_KEY: dates_config(folder / "shards").model_dump()}, checkpoint)
    return checkpoint, pairs[1100:]


def logged_run(uri: str, config: ExperimentConfig, checkpoint: Path,
               metrics: dict[str, float]) -> tuple[str, str | None]:
    """A finished run of `config` with `metrics`, its checkpoint logged as a launch logs
    it; returns (run id, the registered version)."""
    run_id = tracking.start_run(uri, config.tracking.experiment, "run", {"task": config.task})
    client = MlflowClient(uri)
    for key, value in metrics.items():
        client.log_metric(run_id, key, value)
    version = log_best_model(uri, run_id, config, checkpoint)
    tracking.end_run(uri, run_id, "FINISHED")
    return run_id, version

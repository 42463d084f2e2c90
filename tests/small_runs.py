"""A tiny language-model run on the Markov shards (the `markov_dataset` fixture), shared by
the tests that launch one."""

from __future__ import annotations

from pathlib import Path

from orchestrator.config import ExperimentConfig, load_config

EPOCHS = 3
STEPS_PER_EPOCH = 12  # short epochs, so the model is still improving at every epoch end


def small_config(dataset: Path, workdir: Path, *extra: str) -> ExperimentConfig:
    return load_config(None, small_overrides(dataset, workdir, *extra))


def small_overrides(dataset: Path, workdir: Path, *extra: str) -> list[str]:
    """A tiny LM run on the Markov shards, tracked in workdir."""
    return [
        f"data.path={dataset}", "data.sample=null", "data.batch_size=8", "data.bptt=32",
        "data.num_workers=1", f"train.max_epochs={EPOCHS}", "train.progress_bar=false",
        "model.embedding_dim=16", "model.hidden_size=32", "model.num_layers=1",
        "optim.lr=0.005", f"train.batches_per_epoch={STEPS_PER_EPOCH}",
        "generate.prompts=[a]", "generate.length=40",
        f"tracking.uri=sqlite:///{workdir}/mlflow.db", f"ray.storage_path={workdir}/runs",
        *extra,
    ]

"""What a run page says about itself: MLflow's standard tags, a description, the dataset.

MLflow's UI fills its Source, User and Description slots and its Datasets table from these
tags and inputs; a run that sets none shows empty slots and two runs on different data
look alike. Light on purpose: the launching driver imports it (no torch).
"""

from __future__ import annotations

import getpass
import hashlib
import json
import shlex
import sys
from pathlib import Path, PurePosixPath

from mlflow.entities import Dataset, DatasetInput, InputTag
from mlflow.utils.mlflow_tags import (
    MLFLOW_GIT_COMMIT,
    MLFLOW_SOURCE_NAME,
    MLFLOW_SOURCE_TYPE,
    MLFLOW_USER,
)

from orchestrator.config import ExperimentConfig
from orchestrator.datasets.manifest import MANIFEST_NAME, DatasetManifest, is_local
from orchestrator.errors import hide_passwords

DESCRIPTION_TAG = "mlflow.note.content"  # the run page's Description
DATASET_CONTEXT = "mlflow.data.context"  # what the Datasets table shows beside a dataset


def started_by() -> str:
    """The command line that started this process, as the user typed it (no secrets)."""
    program = PurePosixPath(sys.argv[0]).name if sys.argv else "python"
    if program in ("orchestrator", "__main__.py"):
        program = "orchestrator"
    return hide_passwords(shlex.join([program, *sys.argv[1:]]))


def standard_tags(config: ExperimentConfig, command: str, git_commit: str) -> dict[str, str]:
    """MLflow's Source, User and Description, and the task."""
    data = config.data.path or "(none)"
    description = "\n".join([
        f"**{config.task.replace('_', ' ')}** run `{config.name}`",
        "",
        f"- data: `{data}`" + (f" (sample `{config.data.sample}`)" if config.data.sample else ""),
        f"- model: {config.model.num_layers}-layer {config.model.cell}, "
        f"hidden {config.model.hidden_size}",
        f"- started with: `{command}`",
        *_reading_notes(config),
    ])
    return {
        "task": config.task,
        MLFLOW_SOURCE_NAME: command,
        MLFLOW_SOURCE_TYPE: "LOCAL",
        MLFLOW_USER: getpass.getuser(),
        MLFLOW_GIT_COMMIT: git_commit,
        DESCRIPTION_TAG: description,
    }


def _reading_notes(config: ExperimentConfig) -> list[str]:
    """What a chart alone would mislead about."""
    smoothing = config.model.label_smoothing
    if config.task == "translation" and smoothing > 0:
        return [f"- `train_loss` includes label smoothing ({smoothing:g}), so it sits above "
                "`val_loss`, which is the plain cross-entropy (log of `val_perplexity`)"]
    return []


def dataset_input(config: ExperimentConfig, manifest: DatasetManifest) -> DatasetInput:
    """The dataset as MLflow's Datasets table shows it: its folder's name, where it is,
    a digest of its manifest (which lists every shard's checksum) and each split's size."""
    location = config.data.path or manifest.location
    digest = hashlib.sha256(manifest.to_json().encode()).hexdigest()[:16]
    profile = {split: {"samples": info.samples, "tokens": info.tokens, "shards": len(info.shards)}
               for split, info in manifest.splits.items()}
    name = PurePosixPath(location.rstrip("/")).name or location
    source = str(Path(location).resolve()) if is_local(location) else hide_passwords(location)
    schema = {"task": manifest.task, "manifest": MANIFEST_NAME,
              "labels": manifest.labels or []}
    dataset = Dataset(name=name, digest=digest, source_type="local" if is_local(location)
                      else "http", source=json.dumps({"uri": source}),
                      schema=json.dumps(schema), profile=json.dumps(profile))
    return DatasetInput(dataset, tags=[InputTag(DATASET_CONTEXT, "train")])

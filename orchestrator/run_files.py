"""The names of what a run writes, and reading them back.

One home for the file names that the driver, the Train workers, `eval`, the inference
commands and Kubernetes agree on. Light on purpose: the launching driver and a sweep's trial
actors import it, and they never import torch (torch is loaded only to read a checkpoint).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from orchestrator.errors import OrchestratorError

CHECKPOINT_FILE = "checkpoint.ckpt"  # RayTrainReportCallback.CHECKPOINT_NAME
SAMPLES_FILE = "samples.txt"  # written by rank 0 of the Train run
SAMPLES_SEPARATOR = "\n\n---\n\n"
STORED_CONFIG_FILE = "config.yaml"  # the run's experiment config, an MLflow artifact
CONFIG_KEY = "orchestrator_config"  # the experiment config, in a checkpoint's dict
# The launcher names a run `{name}-{timestamp}` unless this is set; a restarted RayJob
# must reuse the same name so Ray Train finds its checkpoints under the storage path.
RUN_NAME_ENV = "ORCHESTRATOR_RUN_NAME"


def checkpoint_file(path: str | Path) -> Path:
    """A .ckpt file, or the Ray checkpoint folder holding one."""
    checkpoint = Path(path)
    if checkpoint.is_dir():
        checkpoint = checkpoint / CHECKPOINT_FILE
    if not checkpoint.is_file():
        raise OrchestratorError(f"checkpoint {checkpoint} does not exist")
    return checkpoint


def read_checkpoint(checkpoint: Path) -> dict[str, Any]:
    """A checkpoint's contents, loaded weights-only: tensors and plain values, never code.

    A file that needs anything more to load (a pickled object of any class) is refused
    without running it, on every supported torch (before 2.6 torch's default ran it)."""
    import pickle

    import torch

    try:
        # mmap: the weights are read from disk as they are used, not all at once
        stored = torch.load(checkpoint, map_location="cpu", weights_only=True, mmap=True)
    except pickle.UnpicklingError as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else "not weights only"
        raise OrchestratorError(
            f"checkpoint {checkpoint} was not loaded: it holds more than weights and plain "
            f"values ({reason[:200]}); only checkpoints that orchestrator writes load"
        ) from None
    except (RuntimeError, OSError, EOFError) as exc:
        raise OrchestratorError(f"checkpoint {checkpoint} is not a readable torch checkpoint "
                                f"({' '.join(str(exc).split())[:200]})") from None
    if not isinstance(stored, dict) or "state_dict" not in stored:
        raise OrchestratorError(f"checkpoint {checkpoint} holds no Lightning state_dict")
    return stored


def config_in_checkpoint(stored: dict[str, Any], checkpoint: Path) -> dict[str, Any]:
    """The experiment config (a plain dict) a Train run stored in its checkpoint, whose
    contents `read_checkpoint` gave as `stored`."""
    if CONFIG_KEY not in stored:
        raise OrchestratorError(
            f"checkpoint {checkpoint} carries no experiment config (written before "
            "`orchestrator eval` existed); give the run's config file after the checkpoint "
            f"(MLflow keeps it as the run's {STORED_CONFIG_FILE} artifact)"
        )
    return stored[CONFIG_KEY]

"""`orchestrator eval CHECKPOINT`: score a trained checkpoint again, without training.

For what a finished run did not measure: more beam sizes, another length penalty, the
validation split, or another prepared dataset of the same task. The run's experiment
config travels inside every checkpoint a Train run writes (`worker.callbacks`), so the
checkpoint alone is enough (a config file given replaces it, for older checkpoints);
`key=value` overrides change it (`eval.beam_sizes=[1,5,10]`, `data.path=...`). One
process, no Ray: a test pass needs no cluster.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import pytorch_lightning as pl
from mlflow.entities import Metric
from mlflow.tracking import MlflowClient

from orchestrator import tracking
from orchestrator.config import ExperimentConfig, load_config, with_overrides
from orchestrator.errors import OrchestratorError
from orchestrator.inputs import ensure_dataset, resolve_paths
from orchestrator.lightning_modules.eval_settings import EvaluatedWithSettings
from orchestrator.registered_model import resolve_checkpoint
from orchestrator.run_description import standard_tags, started_by
from orchestrator.run_files import config_in_checkpoint, read_checkpoint
from orchestrator.task_metrics import TASK_METRICS
from orchestrator.task_params import task_params

Split = Literal["val", "test"]


@dataclass
class EvalResult:
    metrics: dict[str, float]
    run_id: str | None  # the MLflow run it was logged to, if asked


# What a checkpoint's evaluation can change: where the data comes from and how it is read,
# how generating tasks decode, and where the run is logged. Everything else (model, optim,
# train, ray, ...) is fixed by the weights or unused by a single-process test pass.
EFFECTIVE_KEYS = ("data.", "eval.", "tracking.", "name", "train.progress_bar")
FIXED_BY_WEIGHTS = ("data.carry_hidden", "data.sample")


def refuse_ineffective_overrides(config: ExperimentConfig, overrides: list[str]) -> None:
    """An override that cannot change this evaluation is an error, not silently ignored."""
    decodes = TASK_METRICS[config.task].beam_metric is not None
    for item in overrides:
        key = item.partition("=")[0].strip()
        if key.startswith(EFFECTIVE_KEYS) and not key.startswith(FIXED_BY_WEIGHTS) and (
                decodes or not key.startswith("eval.")):
            continue
        valid = ", ".join(f"{key}*" if key.endswith(".") else key for key in EFFECTIVE_KEYS
                          if decodes or key != "eval.")
        raise OrchestratorError(
            f"override {item!r} cannot take effect in `orchestrator eval`: the checkpoint's "
            f"weights and settings fix it for this {config.task} model (valid: {valid})"
        )


def stored_config(stored: dict[str, Any], checkpoint: Path,
                  overrides: list[str]) -> ExperimentConfig:
    """The config the checkpoint was trained with, overrides applied."""
    trained = ExperimentConfig.model_validate(config_in_checkpoint(stored, checkpoint))
    return with_overrides(trained, overrides)


def evaluate(path: str | Path, overrides: list[str], split: Split = "test",
             log: bool = False, config_file: str | None = None,
             ensemble: Sequence[str] = ()) -> EvalResult:
    """One pass over `split` with the checkpoint's weights (and those of the `ensemble`
    checkpoints, decoding as one model); with `log`, into a new MLflow run of the config's
    experiment (params, metrics and the task's artifacts)."""
    from orchestrator.worker.tasks import TASKS, single_pass_trainer

    checkpoint = resolve_checkpoint(path)  # a file, a folder, or models:/NAME@ALIAS
    members = [resolve_checkpoint(item) for item in ensemble]
    stored = read_checkpoint(checkpoint)  # once: the config and the weights come from it
    if config_file is not None:
        config = resolve_paths(load_config(config_file, overrides))
    else:
        config = stored_config(stored, checkpoint, overrides)
    refuse_ineffective_overrides(config, overrides)
    ensure_dataset(config)
    uri = ""
    if log:  # the tracking server is checked before the pass, not after it
        uri = tracking.resolve_tracking_uri(config.tracking)
        tracking.check_reachable(uri)
    datamodule = TASKS[config.task].build_datamodule(config)
    module = _module(stored, checkpoint, members, config)
    trainer = single_pass_trainer("auto", config.train.progress_bar)
    run = trainer.test if split == "test" else trainer.validate
    metrics = {key: float(value)
               for key, value in run(module, datamodule=datamodule, verbose=False)[0].items()}
    run_id = None
    if log:
        sources = [str(item) if str(item).startswith("models:/") else str(found.resolve())
                   for item, found in zip([path, *ensemble], [checkpoint, *members],
                                          strict=True)]
        run_id = _log_eval_run(uri, config, ", ".join(sources), metrics,
                               getattr(module, "artifacts", {}))
    return EvalResult(metrics, run_id)


def _module(stored: dict[str, Any], checkpoint: Path, members: list[Path],
            config: ExperimentConfig) -> pl.LightningModule:
    """The checkpoint's module (with the members' models as an ensemble), decoding with
    the config's `eval` settings."""
    from orchestrator.worker.tasks import join_ensemble, load_task_module, module_from_checkpoint

    module = join_ensemble(
        [module_from_checkpoint(stored, checkpoint, [config.task]),
         *(load_task_module(member, [config.task]) for member in members)],
        [checkpoint, *members])
    if isinstance(module, EvaluatedWithSettings):  # generating tasks decode with `eval`
        module.set_eval_settings(**config.eval.model_dump())
    return module


def _log_eval_run(uri: str, config: ExperimentConfig, source: str,
                  metrics: dict[str, float], artifacts: dict[str, Any]) -> str:
    """A new FINISHED run: the config as params, the scores, the task's artifacts."""
    run_id = tracking.start_run(
        uri, config.tracking.experiment, f"eval-{config.name}-{time.strftime('%Y%m%d-%H%M%S')}",
        tags={**standard_tags(config, started_by(), tracking.git_commit()),
              "orchestrator.evaluated_checkpoint": source},
    )
    client = MlflowClient(uri)
    succeeded = False
    try:
        tracking.log_params(uri, run_id, task_params(config))
        now = int(time.time() * 1000)
        client.log_batch(run_id, metrics=[Metric(key, value, now, 0)
                                          for key, value in metrics.items()])
        tracking.log_artifacts(client, run_id, artifacts)
        succeeded = True
    finally:
        tracking.end_run(uri, run_id, "FINISHED" if succeeded else "FAILED")
    return run_id


def metrics_table(metrics: dict[str, float]) -> str:
    """What the user reads: one metric a line, aligned."""
    width = max(map(len, metrics), default=0)
    return "\n".join(f"{key:<{width}}  {value:.4f}" for key, value in sorted(metrics.items()))

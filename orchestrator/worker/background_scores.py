"""Full-split validation in the background (`train.background_validation`, see
`worker.background_validation`): the Ray task's scoring, and the workers' side, which
waits for the last scores when training ends and tests the best-scored checkpoint.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytorch_lightning as pl
import ray.train
import torch
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient
from ray.train import CheckpointConsistencyMode, ReportedCheckpointStatus

from orchestrator.config import ExperimentConfig
from orchestrator.run_files import CHECKPOINT_FILE, config_in_checkpoint, read_checkpoint
from orchestrator.task_metrics import TASK_METRICS
from orchestrator.worker.tasks import TASKS, module_from_checkpoint, single_pass_trainer

SCORING_THREADS = 1  # beside training, which has the node's cores
EVERY_BATCH = 2**62  # eval.val_bleu_batches that decodes the whole split


def score_checkpoint(checkpoint: ray.train.Checkpoint, tracking_uri: str, run_id: str,
                     credentials: dict[str, str]) -> dict[str, float]:
    """The checkpoint's monitor metric on every batch of the validation split (greedy,
    with the run's eval settings; the weights read weights-only), logged to the run at the
    checkpoint's step: from here, because Ray drops the metrics of the checkpoints it
    deletes (ray.checkpoints_to_keep), and the curve then fills in as scores arrive."""
    torch.set_num_threads(SCORING_THREADS)
    with checkpoint.as_directory() as folder:
        path = Path(folder) / CHECKPOINT_FILE
        stored = read_checkpoint(path)
    config = ExperimentConfig.model_validate(config_in_checkpoint(stored, path))
    module = module_from_checkpoint(stored, path, [config.task])
    module.set_eval_settings(**{**config.eval.model_dump(), "val_bleu_batches": EVERY_BATCH})
    datamodule = TASKS[config.task].build_datamodule(config)
    monitor = TASK_METRICS[config.task].monitor
    metrics = single_pass_trainer("cpu").validate(module, datamodule=datamodule, verbose=False)
    score = float(metrics[0][monitor])
    # the step the epoch's other validation metrics are logged at
    step = max(int(stored["global_step"]) - 1, 0)
    os.environ.update(credentials)
    try:
        MlflowClient(tracking_uri).log_metric(run_id, monitor, score, step=step)
    except MlflowException as exc:  # the score still ranks the checkpoint
        print(f"could not log {monitor}={score} of step {step} to MLflow run {run_id}: "
              f"{exc}", file=sys.stderr)
    return {monitor: score}


class PendingScore(pl.Callback):
    """The epoch's checkpoint goes to Ray unscored (NaN, which ranks last) until its
    background score arrives: without the monitor key Ray logs an error every epoch."""

    def __init__(self, monitor: str):
        self.monitor = monitor

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # before Ray's report callback, which reads callback_metrics
        trainer.callback_metrics[self.monitor] = torch.tensor(float("nan"))


def load_best_scored(module: pl.LightningModule, monitor: str, mode: str) -> float:
    """After training: wait for the last scores and load the weights of the best-scored
    checkpoint into `module` (read weights-only); return its score."""
    reported = ray.train.get_all_reported_checkpoints(
        consistency_mode=CheckpointConsistencyMode.VALIDATED)
    scored = [item for item in reported if item.status == ReportedCheckpointStatus.VALIDATED
              and monitor in item.metrics]
    if not scored:
        raise RuntimeError(f"no checkpoint of this run was scored in the background "
                           f"({monitor}); see the Ray logs of the validation tasks")
    pick = min if mode == "min" else max
    best = pick(scored, key=lambda item: item.metrics[monitor])
    with best.checkpoint.as_directory() as folder:
        module.load_state_dict(read_checkpoint(Path(folder) / CHECKPOINT_FILE)["state_dict"])
    return float(best.metrics[monitor])

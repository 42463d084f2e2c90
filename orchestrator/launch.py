"""`orchestrator launch`: one training run on Ray Train, tracked as one MLflow run.

Everything that can be wrong with the input (config, data, storage, tracking server) is
checked here, before Ray starts. The run ends FINISHED, FAILED, or KILLED when interrupted
(then `launch --resume` continues it); a driver killed outright leaves it RUNNING until a
later launch or `--resume` finds its driver gone (`resume.py`).
This module stays free of torch and Lightning: a sweep runs it in every trial actor.
"""

from __future__ import annotations

import os
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from mlflow.tracking import MlflowClient

from orchestrator import tracking
from orchestrator.config import ExperimentConfig
from orchestrator.datasets.manifest import DatasetManifest
from orchestrator.errors import Interrupted, OrchestratorError
from orchestrator.inputs import (
    check_initial_weights,
    check_model_files,
    check_ray_address,
    check_storage,
    connect_ray,
    ensure_dataset,
    ray_logs_folder,
    resolve_paths,
)
from orchestrator.progress import EpochProgress
from orchestrator.registered_model import log_best_model
from orchestrator.resume import (
    DriverHeartbeat,
    ResumePoint,
    mark_stale_runs,
    reopen,
    resume_command,
    unfinished_pinned_run,
)
from orchestrator.run_description import dataset_input, standard_tags, started_by
from orchestrator.run_files import (
    CHECKPOINT_FILE,
    RUN_NAME_ENV,
    SAMPLES_FILE,
    SAMPLES_SEPARATOR,
    STORED_CONFIG_FILE,
)
from orchestrator.task_metrics import TASK_METRICS
from orchestrator.task_params import task_params
from orchestrator.worker.background_validation import (
    VALIDATION_RESOURCE,
    check_scoring_node,
    validation_config,
)
from orchestrator.worker.entry import train_worker


@dataclass
class LaunchResult:
    run_id: str
    tracking_uri: str
    metrics: dict[str, float]
    checkpoint: str  # the best checkpoint's Lightning file
    samples: list[str]
    summary_metrics: tuple[str, ...]


def launch(config: ExperimentConfig, resume: ResumePoint | None = None) -> LaunchResult:
    """Validate inputs, train on Ray, log to MLflow; raise OrchestratorError on bad input.

    With `resume` (`launch --resume`), or a pinned run name whose run did not finish (a
    retried RayJob), training continues from the run's last checkpoint in the same run."""
    config = resolve_paths(config)
    check_model_files(config)
    uri = tracking.resolve_tracking_uri(config.tracking)
    tracking.check_reachable(uri)
    check_storage(config.ray.storage_path, uri)
    check_ray_address(config.ray.address)
    manifest = ensure_dataset(config)
    check_initial_weights(config)
    client = MlflowClient(uri)
    mark_stale_runs(client, config.tracking.experiment)
    resume = resume or unfinished_pinned_run(client, config)
    # joined before the run: a failure leaves no run behind
    connect_ray(config.ray.address, resources=(
        {VALIDATION_RESOURCE: 1} if config.train.background_validation else None))
    check_scoring_node(config)
    if resume is None:
        run_name = f"{config.name}-{time.strftime('%Y%m%d-%H%M%S')}"
        run_name = os.environ.get(RUN_NAME_ENV) or run_name
        run_id = tracking.start_run(
            uri, config.tracking.experiment, run_name,
            tags=standard_tags(config, started_by(), tracking.git_commit()),
        )
    else:
        run_id, run_name = resume.run_id, resume.run_name
        reopen(client, resume)
    try:
        with DriverHeartbeat(client, run_id), \
                EpochProgress(uri, run_id, config.task, config.train.max_epochs,
                              config.train.background_validation):
            result = train_in_run(config, uri, run_id, run_name, manifest)
    except KeyboardInterrupt:
        _end_unless_away(uri, run_id, "KILLED")
        raise Interrupted(f"continue the run with: {resume_command(run_id, uri)}") from None
    except BaseException:
        _end_unless_away(uri, run_id, "FAILED")
        raise
    tracking.end_run(uri, run_id, "FINISHED")
    return result


def _end_unless_away(uri: str, run_id: str, status: str) -> None:
    """End a run that stopped; a tracking server away now must not replace the reason it
    stopped with its own error (the run then stays RUNNING until found stale)."""
    try:
        tracking.end_run(uri, run_id, status)
    except Exception as exc:  # noqa: BLE001 - the stop's own error is the one to show
        print(f"could not mark MLflow run {run_id} {status}: {exc}", file=sys.stderr)


def train_in_run(
    config: ExperimentConfig, uri: str, run_id: str, run_name: str, manifest: DatasetManifest,
    callbacks: Sequence[Any] = (), eval_variants: list[dict[str, Any]] | None = None,
    start_from: Any | None = None,
) -> LaunchResult:
    """Train, test and log into an open MLflow run: a launch's own, or a sweep trial's
    (whose Tune callback and evaluation variants come in `callbacks`/`eval_variants`, and
    a PBT clone's checkpoint, a `ray.train.Checkpoint`, in `start_from`)."""
    tracking.log_params(uri, run_id, task_params(config))
    _log_inputs(uri, run_id, config, manifest)
    ray_address = connect_ray(config.ray.address)
    client = MlflowClient(uri)
    client.set_tag(run_id, "ray.address", ray_address)
    client.set_tag(run_id, "ray.logs", ray_logs_folder())  # the workers' own output
    result = _fit(config, uri, run_id, run_name, list(callbacks), eval_variants, start_from)
    from orchestrator.undelivered import after_training

    # a tracking server away now is waited for (bounded); what workers kept is replayed
    after_training(uri, config.ray.storage_path, run_name)
    best = _best_checkpoint_file(result, config)
    client.log_artifact(run_id, str(best), "checkpoint")
    log_best_model(uri, run_id, config, best)  # a pyfunc, registered under the experiment
    # MLflow holds the last value of every metric, test metrics included.
    metrics = client.get_run(run_id).data.metrics
    return LaunchResult(run_id, uri, metrics, str(best), _samples(client, run_id),
                        TASK_METRICS[config.task].summary)


def _fit(
    config: ExperimentConfig, uri: str, run_id: str, run_name: str, callbacks: list[Any],
    eval_variants: list[dict[str, Any]] | None, start_from: Any | None = None,
) -> Any:
    from ray.train import (
        CheckpointConfig,
        FailureConfig,
        RunConfig,
        TrainingFailedError,
    )
    from ray.train.torch import TorchTrainer

    from orchestrator.worker.elastic import worker_scaling

    # Ray Train's controller polls its workers every 2 s by default: each start, report and
    # finish waits for a poll, ~3 s per run (most of a sweep trial's overhead, RESULTS.md).
    os.environ.setdefault("RAY_TRAIN_HEALTH_CHECK_INTERVAL_S", "0.25")
    resources = {"CPU": config.ray.cpus_per_worker}
    if config.ray.use_gpu:
        resources["GPU"] = config.ray.gpus_per_worker or 1
    judged_by = TASK_METRICS[config.task]
    credentials = _credentials_for_workers()
    trainer = TorchTrainer(
        train_worker,
        validation_config=(validation_config(uri, run_id, credentials)
                           if config.train.background_validation else None),
        train_loop_config={
            "config": config, "tracking_uri": uri, "run_id": run_id,
            "tracking_credentials": credentials, "eval_variants": eval_variants,
            "start_from": start_from,
        },
        scaling_config=worker_scaling(config.ray, resources),
        run_config=RunConfig(
            name=run_name,
            storage_path=config.ray.storage_path,
            failure_config=FailureConfig(max_failures=config.ray.max_failures),
            callbacks=callbacks,
            checkpoint_config=CheckpointConfig(
                num_to_keep=config.ray.checkpoints_to_keep,
                checkpoint_score_attribute=judged_by.monitor,
                checkpoint_score_order=judged_by.mode,
            ),
        ),
    )
    # Ray Train answers Ctrl-C itself: it stops the workers, then exits the process. The
    # exit becomes an interruption here, so the run ends KILLED and can be resumed; Ray's
    # handler, left installed after fit, is taken down again.
    main_thread = threading.current_thread() is threading.main_thread()
    on_sigint = signal.getsignal(signal.SIGINT) if main_thread else None
    try:
        return trainer.fit()
    except TrainingFailedError as exc:
        raise OrchestratorError(f"training failed: {_root_cause(exc)}") from exc
    except SystemExit:
        raise KeyboardInterrupt from None
    finally:
        if main_thread:
            signal.signal(signal.SIGINT, on_sigint)


def _credentials_for_workers() -> dict[str, str]:
    """This machine's MLflow credentials, for workers of a Ray instance that may have started
    before they were set. Through Ray Client the workers are a remote cluster's, which
    supplies its own: credentials never leave this machine (remote.CLUSTER_CREDENTIALS_HINT)."""
    import ray

    return {} if ray.util.client.ray.is_connected() else tracking.credentials()


def _root_cause(exc: Exception) -> str:
    """The first worker's own error message, not Ray's wrapping of it."""
    failures = getattr(exc, "worker_failures", None) or {}
    for rank in sorted(failures):
        cause = failures[rank]
        while getattr(cause, "cause", None) is not None:
            cause = cause.cause
        lines = [line for line in str(cause).strip().splitlines() if line.strip()]
        return f"rank {rank}: {type(cause).__name__}: {lines[-1] if lines else ''}"
    return str(exc).strip().splitlines()[-1]


def _best_checkpoint_file(result: Any, config: ExperimentConfig) -> Path:
    judged_by = TASK_METRICS[config.task]
    scored = [pair for pair in result.best_checkpoints if judged_by.monitor in pair[1]]
    if scored:
        pick = min if judged_by.mode == "min" else max
        checkpoint = pick(scored, key=lambda pair: pair[1][judged_by.monitor])[0]
    else:
        checkpoint = result.checkpoint
    if checkpoint is None:
        raise OrchestratorError("training reported no checkpoint; is train.max_epochs >= 1?")
    return Path(checkpoint.path) / CHECKPOINT_FILE


def _log_inputs(
    uri: str, run_id: str, config: ExperimentConfig, manifest: DatasetManifest
) -> None:
    client = MlflowClient(uri)
    client.log_text(run_id, yaml.safe_dump(config.model_dump(), sort_keys=False),
                    STORED_CONFIG_FILE)
    client.log_text(run_id, manifest.read_file(manifest.vocab_file), "vocab.json")
    tracking.log_dataset_input(client, run_id, dataset_input(config, manifest))


def _samples(client: MlflowClient, run_id: str) -> list[str]:
    """The example outputs the Train run logged."""
    with tempfile.TemporaryDirectory() as folder:
        text = Path(client.download_artifacts(run_id, SAMPLES_FILE, folder)).read_text()
    return text.split(SAMPLES_SEPARATOR) if text else []


def summary(result: LaunchResult) -> str:
    """What the user reads at the end of a launch."""
    metrics = result.metrics
    lines = []
    for stage in ("val", "test"):
        values = [f"{key[len(stage) + 1:].replace('_', ' ')} {value:.4g}"
                  for key, value in sorted(metrics.items())
                  if key.startswith(tuple(f"{stage}_{name}" for name in result.summary_metrics))]
        lines.append(f"{stage}: " + ", ".join(values))
    if result.samples:
        # a language model's sample opens with its prompt and settings: show the text
        sample = result.samples[0]
        text = sample.split("\n\n")[1] if sample.startswith("prompt: ") else sample
        lines.append(f"sample: {text[:120]!r}")
    lines += [
        f"MLflow run: {result.run_id}",
        f"checkpoint: {result.checkpoint}",
        f"open the MLflow UI: orchestrator ui tracking.uri={result.tracking_uri}",
    ]
    return "\n".join(lines)

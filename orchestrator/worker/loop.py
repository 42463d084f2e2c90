"""What every Ray Train worker runs: build the DataModule and LightningModule, fit, test.

Ray starts it through `orchestrator.worker.entry`; the config arrives as the driver's
validated ExperimentConfig object, not re-read or re-checked here.

Ray enters only through the strategy, the environment plugin and the report callback;
MLflow only through Lightning's logger, which writes from rank 0.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import ray
import ray.train
import torch.distributed as dist
from pytorch_lightning.loggers import MLFlowLogger
from ray.train.lightning import (
    RayDDPStrategy,
    RayLightningEnvironment,
    RayTrainReportCallback,
    prepare_trainer,
)

from orchestrator.config import ExperimentConfig
from orchestrator.lightning_modules.averaged_weights import AverageLastEpochs
from orchestrator.lightning_modules.best_weights import KeepBestWeights
from orchestrator.lightning_modules.optimizers import ApplyOptimSettings
from orchestrator.lightning_modules.throughput import TokenThroughput
from orchestrator.run_files import SAMPLES_FILE, SAMPLES_SEPARATOR
from orchestrator.task_metrics import TASK_METRICS
from orchestrator.tuning.evaluation_axes import variant_prefix
from orchestrator.undelivered import spill_folder
from orchestrator.worker.background_scores import PendingScore, load_best_scored
from orchestrator.worker.callbacks import ConfigInCheckpoint
from orchestrator.worker.metric_delivery import KeepingMLFlowLogger
from orchestrator.worker.restarts import (
    FollowWorldSize,
    LogEpochLearningRate,
    LogEpochsOnce,
    NewDrawsOnResume,
)
from orchestrator.worker.system_metrics import node_system_metrics
from orchestrator.worker.tasks import TASKS, load_initial_weights


def train_loop_per_worker(loop_config: dict[str, Any]) -> None:
    config: ExperimentConfig = loop_config["config"]
    with node_system_metrics(loop_config["tracking_uri"], loop_config["run_id"],
                             config.tracking.system_metrics_s):
        _train_and_test(loop_config, config)


def _train_and_test(loop_config: dict[str, Any], config: ExperimentConfig) -> None:
    # Per-step metrics queue up and go to the store as one batch every 2 s: a write per
    # step costs ~10% of training speed on a small model (benchmarks/RESULTS.md).
    os.environ.setdefault("MLFLOW_ASYNC_LOGGING_BUFFERING_SECONDS", "2")
    # Workers may have started before the driver had the tracking server's credentials.
    os.environ.update(loop_config.get("tracking_credentials", {}))
    task = TASKS[config.task]
    pl.seed_everything(config.seed, workers=True, verbose=False)
    datamodule = task.build_datamodule(config)
    module = task.build_module(config, datamodule)
    # metrics the tracking server does not take (an outage) are kept and sent again
    logger = KeepingMLFlowLogger(
        loop_config["tracking_uri"], loop_config["run_id"],
        spill_folder(config.ray.storage_path, ray.train.get_context().get_experiment_name()),
    )
    judged_by = TASK_METRICS[config.task]
    best_weights = KeepBestWeights(judged_by.monitor, judged_by.mode)
    keepers: list[pl.Callback] = [
        PendingScore(judged_by.monitor) if config.train.background_validation else best_weights]
    averaging = None  # copies the weights every epoch, so only when asked for
    if config.train.average_last > 1:
        averaging = AverageLastEpochs(config.train.average_last)
        keepers.append(averaging)
    trainer = prepare_trainer(_make_trainer(config, logger, keepers))
    _tag_worker_nodes(logger)

    started = time.perf_counter()
    # a restarted worker group continues from this run's last report; a new run may start
    # from another run's checkpoint (a PBT clone)
    checkpoint = ray.train.get_checkpoint() or loop_config.get("start_from")
    if checkpoint is None:
        if config.train.init_from is not None:  # another run's weights, this run's optimiser
            load_initial_weights(module, config)
        trainer.fit(module, datamodule=datamodule)
    else:
        with checkpoint.as_directory() as folder:
            resume_from = Path(folder) / RayTrainReportCallback.CHECKPOINT_NAME
            trainer.fit(module, datamodule=datamodule, ckpt_path=str(resume_from),
                        weights_only=True)

    final = {key: float(value) for key, value in trainer.callback_metrics.items()}
    final["epoch"] = trainer.current_epoch - 1  # the last epoch, as the epoch reports count
    if averaging is not None and averaging.ready:
        _offer_average(trainer, module, datamodule, averaging, best_weights, final)
    # test the best validation epoch, like the best checkpoint
    if config.train.background_validation:
        final[judged_by.monitor] = load_best_scored(module, judged_by.monitor, judged_by.mode)
    else:
        best_weights.restore(module)
    for variant in loop_config.get("eval_variants") or [{}]:
        final.update(_test(trainer, module, datamodule, variant))
    # fit + test wall time: what a sweep's per-trial overhead is measured against
    final["time_fit_test_s"] = time.perf_counter() - started
    if trainer.global_rank == 0:
        # example outputs of the tested weights, made here where the model already is
        samples = task.samples(module, config)
        # uploaded and every metric delivered, or (server away) kept for the driver's replay
        logger.finish({**getattr(module, "artifacts", {}),
                       SAMPLES_FILE: SAMPLES_SEPARATOR.join(samples)})
    ray.train.report(metrics=final)


def _offer_average(
    trainer: pl.Trainer, module: pl.LightningModule, datamodule: pl.LightningDataModule,
    averaging: AverageLastEpochs, best_weights: KeepBestWeights, final: dict[str, float],
) -> None:
    """Validate the average of the last epochs' weights; where it beats the best epoch it
    becomes what is tested, and a checkpoint of its own (Ray then ranks it the best)."""
    module.load_state_dict(averaging.average())
    loggers, trainer.loggers = trainer.loggers, []  # the epochs' val history stays as it is
    metrics = trainer.validate(module, datamodule=datamodule, verbose=False)[0]
    trainer.loggers = loggers
    monitor = best_weights.monitor
    epochs = len(averaging.states)
    final[f"{monitor}_average_last{epochs}"] = metrics[monitor]
    if trainer.global_rank == 0:
        trainer.logger.log_metrics({f"{monitor}_average_last{epochs}": metrics[monitor]},
                                   step=trainer.global_step)
    if best_weights.offer(metrics[monitor], module.state_dict()):
        with tempfile.TemporaryDirectory() as folder:
            trainer.save_checkpoint(Path(folder) / RayTrainReportCallback.CHECKPOINT_NAME)
            ray.train.report(
                metrics={**metrics, "epoch": final["epoch"], "averaged_epochs": epochs},
                checkpoint=ray.train.Checkpoint.from_directory(folder),
            )


def _test(
    trainer: pl.Trainer, module: pl.LightningModule, datamodule: pl.LightningDataModule,
    variant: dict[str, Any],
) -> dict[str, float]:
    """One test pass with these eval-section settings (a sweep's evaluation axes); metrics
    of a variant are also logged under the variant's prefix, so passes never overwrite."""
    if not variant:
        return trainer.test(module, datamodule=datamodule, verbose=False)[0]
    module.set_eval_settings(**variant)
    metrics = trainer.test(module, datamodule=datamodule, verbose=False)[0]
    prefixed = {variant_prefix(variant) + key: value for key, value in metrics.items()}
    if trainer.global_rank == 0:
        trainer.logger.log_metrics(prefixed)
    return prefixed


def _make_trainer(
    config: ExperimentConfig, logger: MLFlowLogger, keepers: list[pl.Callback]
) -> pl.Trainer:
    clip = config.optim.clip
    return pl.Trainer(
        max_epochs=config.train.max_epochs,
        precision=config.train.precision,
        accelerator="gpu" if config.ray.use_gpu else "cpu",
        devices="auto",
        # Evaluation shards are split unevenly over ranks (a rank may get none), so DDP must
        # not broadcast buffers (batch-norm statistics) in every forward: a rank with no
        # batch would never join, and the others would wait forever.
        strategy=RayDDPStrategy(broadcast_buffers=False),
        plugins=[RayLightningEnvironment()],
        # first: the world size sets the rate LogEpochLearningRate logs (worker.restarts)
        callbacks=[FollowWorldSize(config), LogEpochsOnce(), TokenThroughput(),
                   LogEpochLearningRate(), ApplyOptimSettings(),
                   *keepers, ConfigInCheckpoint(config), NewDrawsOnResume(config.seed),
                   RayTrainReportCallback(validation=config.train.background_validation)],
        logger=logger,
        accumulate_grad_batches=config.train.accumulate_grad_batches,
        gradient_clip_val=clip,
        gradient_clip_algorithm=config.optim.clip_mode if clip is not None else None,
        log_every_n_steps=config.train.log_every_n_steps,
        enable_progress_bar=config.train.progress_bar,
        enable_checkpointing=False,  # Ray's report callback owns checkpoints
        enable_model_summary=False,
        num_sanity_val_steps=0,
        use_distributed_sampler=False,  # the readers split shards themselves
    )


def _tag_worker_nodes(logger: KeepingMLFlowLogger) -> None:
    """Record which Ray nodes the workers ran on (one tag, from rank 0)."""
    node_id = ray.get_runtime_context().get_node_id()
    node_ids: list[str] = [node_id]
    if dist.is_initialized():
        node_ids = [""] * dist.get_world_size()
        dist.all_gather_object(node_ids, node_id)
    if ray.train.get_context().get_world_rank() == 0:
        logger.log_tags({"ray.worker_nodes": ",".join(node_ids)})  # kept, like metrics

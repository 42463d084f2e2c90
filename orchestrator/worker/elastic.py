"""Elastic training: the worker range a launch asks Ray Train for, and the rule every
worker follows when it trains in a world smaller than the configured one.

With `ray.min_workers` below `ray.num_workers`, Ray Train 2.60 gets
`ScalingConfig(num_workers=(min, max))`: a lost node ends the worker group, which restarts
from the last checkpoint on the workers that fit (at least min); every `ray.resize_check_s`
a healthy group checks whether more fit, and if so restarts on them, again from the last
checkpoint. Worker loss counts against `ray.max_failures`; a resize does not.

The rule (linear scaling, Goyal et al. 2017): `optim.lr` and `train.batches_per_epoch` are
the values for the full world of `ray.num_workers` workers. A worker's batch stays
`data.batch_size`, so the global batch is batch_size x world size; on `w` workers the
learning rate is `lr * w / num_workers`, and each rank runs
`ceil(batches_per_epoch * num_workers / w)` batches, so an epoch covers the same samples
whatever the world size (an unset batches_per_epoch is one pass over the training split on
every world size already). A fixed-size run always has `w == num_workers`: nothing changes.
This module stays free of torch: launch imports it.
"""

from __future__ import annotations

import math
import os
from typing import Any

from orchestrator.config import RayConfig

# Ray Train sizes a restarted group from a view of the cluster that its autoscaling
# coordinator refreshes every 20 s, so just after a node is lost it may ask for the old
# size and wait for resources that are gone; it gives up after this timeout (Ray's default:
# 60 s) and asks again. Only set for elastic runs, where a smaller group is the fallback.
START_TIMEOUT_ENV = "RAY_TRAIN_WORKER_GROUP_START_TIMEOUT_S"
ELASTIC_START_TIMEOUT_S = 10


def worker_scaling(ray_config: RayConfig, resources_per_worker: dict[str, float]) -> Any:
    """Ray Train's ScalingConfig: `num_workers` workers, or for an elastic run the
    (min_workers, num_workers) range that Ray's elastic policy resizes within."""
    from ray.train import ScalingConfig

    if not ray_config.elastic:
        return ScalingConfig(num_workers=ray_config.num_workers, use_gpu=ray_config.use_gpu,
                             resources_per_worker=resources_per_worker)
    # read by the Train controller, which Ray hands the driver's RAY_TRAIN_* variables
    os.environ.setdefault(START_TIMEOUT_ENV, str(ELASTIC_START_TIMEOUT_S))
    return ScalingConfig(
        num_workers=(ray_config.min_workers, ray_config.num_workers),
        use_gpu=ray_config.use_gpu,
        resources_per_worker=resources_per_worker,
        elastic_resize_monitor_interval_s=ray_config.resize_check_s,
    )


def lr_scale(world_size: int, full_world: int) -> float:
    """The factor on `optim.lr` in a world of `world_size` workers: the learning rate
    follows the global batch, which is proportional to the world size."""
    return world_size / full_world


def batches_per_rank(batches_per_epoch: int, world_size: int, full_world: int) -> int:
    """Batches each of `world_size` ranks runs per epoch, where `batches_per_epoch` is the
    count per rank in the full world: the epoch's total stays the same (rounded up)."""
    return math.ceil(batches_per_epoch * full_world / world_size)

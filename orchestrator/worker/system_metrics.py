"""System metrics of every Ray node a run trains on, in the run's System metrics tab.

One worker per node (local rank 0) runs MLflow's own SystemMetricsMonitor (psutil for CPU,
memory, disk and network; NVML for GPUs where nvidia-ml-py and a GPU are there), named by
the node's rank: `system/node_0/cpu_utilization_percentage`. A tag maps each name to the
Ray node and host, so a slow node in a multi-node run can be found.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Iterator
from contextlib import contextmanager

from mlflow.system_metrics.system_metrics_monitor import SystemMetricsMonitor
from mlflow.tracking import MlflowClient

logger = logging.getLogger(__name__)

NODE_TAG_PREFIX = "system_metrics."  # system_metrics.node_0 = "<host> <ray node id>"


@contextmanager
def node_system_metrics(uri: str, run_id: str, interval_s: float | None) -> Iterator[None]:
    """Sample this node's metrics while training runs, from its local-rank-0 worker only."""
    import ray
    import ray.train

    context = ray.train.get_context()
    if interval_s is None or context.get_local_rank() != 0:
        yield
        return
    node = f"node_{context.get_node_rank()}"
    where = f"{socket.gethostname()} {ray.get_runtime_context().get_node_id()[:12]}"
    try:
        MlflowClient(uri).set_tag(run_id, NODE_TAG_PREFIX + node, where)
    except Exception as exc:  # noqa: BLE001 - a tracking outage must not stop training
        logger.warning("system metrics of %s not tagged: %s", node, exc)
    # A restarted worker group continues the steps instead of writing over them (it reads
    # the run for that; a fresh start needs no read, so an outage cannot delay it).
    restarted = ray.train.get_checkpoint() is not None
    monitor = SystemMetricsMonitor(run_id, sampling_interval=interval_s,
                                   resume_logging=restarted, node_id=node, tracking_uri=uri)
    monitor.start()
    try:
        yield
    finally:
        monitor.finish()

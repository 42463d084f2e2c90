"""The function each Ray Train worker starts, in a module that imports nothing.

Ray pickles it by module and name, so whoever unpickles it imports this module: the
workers, which import the training loop anyway, and the Train controller, which does not
need it. A sweep starts a controller for every trial, and a light import there is part of
the per-trial overhead (benchmarks/RESULTS.md).
"""

from __future__ import annotations

from typing import Any


def train_worker(loop_config: dict[str, Any]) -> None:
    from orchestrator.worker.loop import train_loop_per_worker

    train_loop_per_worker(loop_config)

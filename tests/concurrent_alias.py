"""Processes that move a registered model's alias at the same moment, as a sweep's trials
ending together do (each its own process, like each trial's actor)."""

from __future__ import annotations

import multiprocessing

from mlflow.tracking import MlflowClient

from orchestrator.registered_model import point_alias_at_best


def _point_at_once(store: str, name: str, version: str, task: str, start) -> None:
    client = MlflowClient(store)
    client.get_registered_model(name)  # connected before the barrier: the writes coincide
    start.wait()
    point_alias_at_best(client, name, "best", version, task)


def point_alias_from_processes(store: str, name: str, versions: list[str], task: str) -> list[int]:
    """Each version's process moves the alias once all are ready; their exit codes."""
    context = multiprocessing.get_context("spawn")  # no forked copy of the test's threads
    start = context.Barrier(len(versions))
    processes = [context.Process(target=_point_at_once, args=(store, name, v, task, start))
                 for v in versions]
    for process in processes:
        process.start()
    for process in processes:
        process.join(timeout=120)
    return [process.exitcode for process in processes]

"""Forward a Ray Train run's reports to the Tune trial that runs it, checkpoints included.

Ray's own `TuneReportCallback` hands Tune the metrics only (and the checkpoint's path as a
metric), so Tune never holds a checkpoint of the trial. Population based training needs
one: it restarts a weak trial from a strong trial's checkpoint. Here the Train controller
puts each report on a queue, and the trial's own thread calls `tune.report` with it.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from typing import Any, TypeVar

from ray import tune
from ray.train.v2.api.callback import UserCallback
from ray.util.queue import Queue

# Nothing here imports MLflow: the Train controller unpickles this module's callback, and
# a sweep starts a controller for every trial.

Result = TypeVar("Result")
_DONE = "__train_run_done__"
_queue: Queue | None = None


class ForwardReports(UserCallback):
    """Runs in the Train controller: every report (rank 0's metrics and the checkpoint
    Train persisted, or None) goes on the trial's queue, marked with the Train run's
    token."""

    def __init__(self, queue: Queue, token: str):
        self.queue = queue
        self.token = token

    def after_report(self, run_context: Any, metrics: list[dict[str, Any]],
                     checkpoint: Any) -> None:
        self.queue.put((self.token, (dict(metrics[0]), checkpoint)))


def _report_queue() -> Queue:
    """One queue actor per trial actor process, not per trial: a trial actor that Tune
    reuses for the next trial keeps its queue instead of starting another actor."""
    global _queue
    if _queue is None:
        _queue = Queue(actor_options={"num_cpus": 0})
    return _queue


def fit_reporting_to_tune(
    fit: Callable[[list[UserCallback]], Result], with_checkpoints: bool
) -> Result:
    """Run `fit(callbacks)` (a Train run) in a thread and report each of its results to
    Tune from this, the trial's, thread; with `with_checkpoints` Tune keeps each report's
    checkpoint (a copy in the trial folder), which the PBT scheduler clones from."""
    from orchestrator.tuning.mlflow_runs import TRIAL_TAG

    queue, token = _report_queue(), uuid.uuid4().hex
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["result"] = fit([ForwardReports(queue, token)])
        except BaseException as exc:  # re-raised in the trial's thread below
            outcome["error"] = exc
        finally:
            queue.put((token, _DONE))

    trial_id = tune.get_context().get_trial_id()
    worker = threading.Thread(target=run, name="train-run", daemon=True)
    worker.start()
    while True:
        sender, item = queue.get()
        if sender != token:  # left by an earlier trial's run in this actor
            continue
        if item == _DONE:
            break
        metrics, checkpoint = item
        if not (with_checkpoints and checkpoint):
            checkpoint = None
        else:  # whoever continues from a copy of it can tell whose it was
            checkpoint.update_metadata({TRIAL_TAG: trial_id})
        tune.report(metrics, checkpoint=checkpoint)
    worker.join()
    if "error" in outcome:
        raise outcome["error"]
    return outcome["result"]

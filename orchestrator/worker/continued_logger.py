"""The run's MLflow logger, which never logs a metric at a step the run already holds
(nor Lightning's `epoch`, which only restates the step).

A run continued from a checkpoint (`launch --resume`, a worker group Ray restarted, a
retried RayJob) trains again from the checkpoint's step: the steps between that checkpoint
and the interruption were logged once already, by the attempt that was stopped. MLflow
cannot delete metric values, so the later attempt skips them: every history keeps one
value per step, in step order, and its curve goes on where the run's left off.
"""

from __future__ import annotations

from collections.abc import Mapping

from pytorch_lightning.loggers import MLFlowLogger
from pytorch_lightning.utilities import rank_zero_only


class ContinuedRunLogger(MLFlowLogger):
    """MLFlowLogger that drops, per metric, steps at or before the last one in the run
    (read once, when it first logs)."""

    def __init__(self, *args: object, **kwargs: object):
        super().__init__(*args, **kwargs)
        self._logged_until: dict[str, int] | None = None

    @rank_zero_only
    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        # Lightning adds the epoch to every logged dict; in MLflow it would be one more chart
        # that only restates the step axis.
        metrics = {key: value for key, value in metrics.items() if key != "epoch"}
        if step is not None:
            if self._logged_until is None:
                self._logged_until = self._last_steps()
            metrics = {key: value for key, value in metrics.items()
                       if step > self._logged_until.get(key, -1)}
        if metrics:
            super().log_metrics(metrics, step)

    def _last_steps(self) -> dict[str, int]:
        """The last step of every metric the run holds (none for a new run)."""
        client = self.experiment
        keys = client.get_run(self.run_id).data.metrics
        return {key: max(metric.step for metric in client.get_metric_history(self.run_id, key))
                for key in keys}

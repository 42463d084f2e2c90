"""One line per epoch on the driver, read from the MLflow run the workers write.

The workers' own output (Lightning's bar, Ray Train's messages) goes to their Ray log files,
not the console: forwarded through Ray's log pipe, a bar redrawn every step became hundreds
of lines. The driver already knows the run, so it polls the run's metrics and prints the
epoch's validation score, training loss and throughput as each epoch's metrics arrive.
"""

from __future__ import annotations

import threading
import time
from types import TracebackType

from mlflow.tracking import MlflowClient

from orchestrator.task_metrics import TASK_METRICS

POLL_S = 2.0
JOIN_S = 10.0


class EpochProgress:
    """Prints `epoch 2/5  val_perplexity 1.71  train_loss 0.55  28.6k tokens/s  0:41`
    for every epoch while the `with` block (a Train run) runs."""

    def __init__(self, uri: str, run_id: str, task: str, max_epochs: int,
                 scored_in_background: bool = False):
        self.client = MlflowClient(uri)
        self.run_id = run_id
        # A score computed beside training (train.background_validation) arrives epochs
        # late; the validation loss comes with its epoch.
        self.monitor = "val_loss" if scored_in_background else TASK_METRICS[task].monitor
        self.unit = TASK_METRICS[task].throughput_unit
        self.max_epochs = max_epochs
        self.printed = 0
        self._started = time.monotonic()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="epoch-progress", daemon=True)

    def __enter__(self) -> EpochProgress:
        # a resumed run's earlier epochs were printed by the launch that trained them
        self.printed = len(self.client.get_metric_history(self.run_id, self.monitor))
        self._thread.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self._stop.set()
        # a poll stuck in MLflow's retries (a tracking outage) must not hold up the launch
        self._thread.join(timeout=JOIN_S)
        if kind is None and not self._thread.is_alive():
            self.print_new_epochs()  # the last epoch's metrics may have come in since

    def _watch(self) -> None:
        while not self._stop.wait(POLL_S):
            try:
                self.print_new_epochs()
            except Exception:  # noqa: BLE001 - progress must never stop training
                continue

    def print_new_epochs(self) -> None:
        history = self.client.get_metric_history(self.run_id, self.monitor)
        if len(history) <= self.printed:
            return
        latest = self.client.get_run(self.run_id).data.metrics
        for epoch in range(self.printed, len(history)):
            # loss and throughput are read now: they belong to the newest epoch only
            now = latest if epoch == len(history) - 1 else {}
            print(self.line(epoch, history[epoch].value, now), flush=True)
        self.printed = len(history)

    def line(self, epoch: int, score: float, latest: dict[str, float]) -> str:
        """The epoch's validation score; loss and throughput as they are now."""
        elapsed = int(time.monotonic() - self._started)
        parts = [f"epoch {epoch + 1}/{self.max_epochs}", f"{self.monitor} {score:.4g}"]
        if "train_loss" in latest:
            parts.append(f"train_loss {latest['train_loss']:.4g}")
        if "train_tokens_per_sec" in latest:
            parts.append(f"{latest['train_tokens_per_sec'] / 1000:.1f}k {self.unit}/s")
        parts.append(f"{elapsed // 60}:{elapsed % 60:02d}")
        return "  ".join(parts)

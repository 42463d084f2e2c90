"""A real `mlflow server` on loopback stops for 15 s in the middle of training and starts
again on the same port and store: the run finishes, and every epoch's metrics are in it.
15 s is five times what a worker's MLflow client retries (metric_delivery.HTTP_SETTINGS),
so the metrics must be kept and delivered later, not merely retried."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from orchestrator.launch import launch
from orchestrator.task_metrics import TASK_METRICS
from tests.servers import free_port, start_mlflow_server, stop_process_group
from tests.small_runs import small_config

# ~4 s an epoch here (2 cores): epochs 3-6 train while the server is away (15 s, and ~4 s
# to start again), the last 4 after it is back; a slower machine trains more of them after
EPOCHS = 10
STEPS_PER_EPOCH = 300
OUTAGE_S = 15.0
MONITOR = TASK_METRICS["language_model"].monitor


class Outage(threading.Thread):
    """Stops the server once epoch 2's validation metric is in the run, and starts it
    again OUTAGE_S later on the same port and store."""

    def __init__(self, folder: Path, port: int, server):
        super().__init__(name="outage", daemon=True)
        self.folder, self.port, self.server = folder, port, server
        self.client = MlflowClient(f"http://127.0.0.1:{port}")
        self.stopped_at = self.restarted_at = 0.0
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self._wait_for_epochs(2)
            stop_process_group(self.server)
            self.stopped_at = time.time()
            time.sleep(OUTAGE_S)
            self.server = start_mlflow_server(self.folder, self.port)
            self.restarted_at = time.time()
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            self.error = exc

    def _wait_for_epochs(self, epochs: int, timeout_s: float = 180.0) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            runs = self.client.search_runs(self._experiments())
            if runs and len(self.client.get_metric_history(runs[0].info.run_id, MONITOR)) >= epochs:
                return
            time.sleep(0.5)
        raise TimeoutError(f"epoch {epochs} never reached the server")

    def _experiments(self) -> list[str]:
        return [e.experiment_id for e in self.client.search_experiments()]


@pytest.fixture
def server_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "server"
    folder.mkdir()
    return folder


def test_a_15_s_server_outage_mid_training_loses_no_metric(local_ray, markov_dataset,
                                                             tmp_path, server_folder):
    port = free_port()
    outage = Outage(server_folder, port, start_mlflow_server(server_folder, port))
    uri = f"http://127.0.0.1:{port}"
    config = small_config(markov_dataset, tmp_path, f"tracking.uri={uri}", "name=outage",
                          f"train.max_epochs={EPOCHS}",
                          f"train.batches_per_epoch={STEPS_PER_EPOCH}")
    outage.start()
    try:
        result = launch(config)
        outage.join(timeout=120)
    finally:
        stop_process_group(outage.server)
    assert outage.error is None and outage.restarted_at, outage.error
    # the server is gone now: the run is read from its store directly
    client = MlflowClient(f"sqlite:///{server_folder}/mlflow.db")
    run = client.get_run(result.run_id)
    assert run.info.status == "FINISHED"
    history = client.get_metric_history(result.run_id, MONITOR)
    assert len(history) == EPOCHS
    # training went on while the server was away, and after it came back
    validated = [m.timestamp / 1000 for m in history]
    assert any(outage.stopped_at <= at <= outage.restarted_at for at in validated)
    assert validated[-1] > outage.restarted_at
    steps = sorted(m.step for m in client.get_metric_history(result.run_id, "train_loss"))
    assert steps == list(range(EPOCHS * STEPS_PER_EPOCH))
    assert "test_perplexity" in run.data.metrics and result.samples
    print("outage:", run.data.tags["tracking.outage"], "; epochs validated at (s after the "
          f"stop): {[round(at - outage.stopped_at) for at in validated]}, back at "
          f"{outage.restarted_at - outage.stopped_at:.0f}")
    assert "batches" in run.data.tags["tracking.outage"], run.data.tags

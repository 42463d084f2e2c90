"""Metrics reach MLflow even when its server stops answering for a while.

Lightning's MLFlowLogger hands each step's metrics to MLflow's asynchronous queue, which
sends them in batches when flushed (LogEpochsOnce) or every 2 s. When the server is away,
MLflow retries a batch for ~4 min, then logs an error and drops it, and every flush waits
out those retries: measured, a 30 s outage stopped training for a minute, and a longer
one loses metrics (tests/integration/test_tracking_outage.py). So in a Train worker:

- MLflow gives up on a request after seconds, not minutes (HTTP_SETTINGS), and the
  logger's client keeps every batch until MLflow confirms it (RunOperations.wait). A
  batch MLflow failed goes to the MetricKeeper, and while the server is away new batches
  go there directly: no request for them, no flush to wait for; training goes on.
- At each epoch's end the keeper tries the server once, in the background, with all it
  holds in one `log_batch` (MLflow splits it into requests of 1000 values); success ends
  the outage and tags the run (`tracking.outage`: how long, how many batches came late).
- Past the bound (`undelivered.SPILL_AFTER_S`, `SPILL_AFTER_VALUES`), and at the end of
  training when the server is still away after END_WAIT_S, what it holds is written to
  the run's `undelivered/` folder, which the launch driver replays.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import mlflow
from mlflow.entities import Metric, Param, RunTag
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient
from mlflow.utils.async_logging.run_operations import RunOperations
from pytorch_lightning.loggers.logger import rank_zero_experiment

from orchestrator import tracking, undelivered
from orchestrator.undelivered import OUTAGE_TAG, Batch
from orchestrator.worker.continued_logger import ContinuedRunLogger

log = logging.getLogger(__name__)

# A request to a server that is away fails in ~3 s (refused) or ~45 s (no answer at all)
# instead of MLflow's ~4 min: the keeper, not MLflow, waits for the server to come back.
HTTP_SETTINGS = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",
                 "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
                 "MLFLOW_HTTP_REQUEST_TIMEOUT": "15"}
RETRY_S = 5.0  # how often the keeper tries a server that did not answer
END_WAIT_S = 60.0  # at the end of training, how long rank 0 waits for it before spilling


class MetricKeeper:
    """Holds the batches the server has not taken and sends them again; one thread, which
    starts with the first batch (only rank 0 logs)."""

    def __init__(self, client: MlflowClient, run_id: str, folder: Path):
        self.client = client  # synchronous: re-sending happens off the training thread
        self.run_id = run_id  # the run the outage tag goes to
        self.folder = folder
        # None: try the server when asked (an epoch's end); at the end of training, RETRY_S
        self.retry_every: float | None = None
        self._watched: queue.Queue[tuple[Batch, RunOperations]] = queue.Queue()
        self._unsettled: dict[int, Batch] = {}  # in MLflow's queue, not confirmed yet
        self._kept: list[Batch] = []  # to send when the server answers
        self._kept_values = 0
        self._kept_since = 0.0
        self._sending: list[Batch] = []  # taken from _kept, on their way
        self._distrust = False  # a batch failed: those watched after it may have too
        self._lock = threading.Lock()
        self._closed = False  # after close, whatever fails goes straight to the folder
        self._since: float | None = None  # when the current outage began (monotonic)
        self._asked = threading.Event()
        self._tried = 0.0
        self.outages = 0
        self.seconds = 0.0
        self.late_batches = self.late_values = self.spilled = self.refused = 0
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()

    @property
    def in_outage(self) -> bool:
        return self._since is not None

    def watch(self, batch: Batch, operations: RunOperations) -> None:
        """A batch MLflow's queue will send; kept if it fails."""
        with self._lock:
            self._unsettled[id(batch)] = batch
        self._start()
        self._watched.put((batch, operations))

    def keep(self, batch: Batch) -> None:
        """A batch to send when the server answers again."""
        with self._lock:
            closed = self._closed
            if not closed:
                self._hold(batch)
        if closed:
            self._write([batch])
        else:
            self._start()

    def ask(self) -> None:
        """Try the server soon with what is held (without waiting for it here)."""
        self._asked.set()

    def settled(self) -> bool:
        """Nothing waits for the server: every batch confirmed (or refused, and logged)."""
        with self._lock:
            return not (self._unsettled or self._kept or self._sending)

    def summary(self) -> str:
        """What the outages did, for the run's `tracking.outage` tag."""
        seconds = self.seconds + (time.monotonic() - self._since if self._since else 0.0)
        text = (f"{self.outages} outage(s), {seconds:.0f} s in all; {self.late_batches} "
                f"batches ({self.late_values} values) delivered late")
        if self.spilled:
            text += f"; {self.spilled} values written to {self.folder} for replay"
        if self.refused:
            text += f"; {self.refused} values refused by the server (see the worker's log)"
        return text

    def close(self) -> None:
        """Write everything not confirmed to the run's folder, once the thread has had a
        moment to finish what it is doing; from now on a failure goes there directly. A
        batch both written and delivered later is harmless: a replay skips it."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=RETRY_S)
        with self._lock:
            self._closed = True
            batches = [*self._kept, *self._sending, *self._unsettled.values()]
            self._kept, self._kept_values = [], 0
        self._write(batches)

    def _hold(self, batch: Batch) -> None:
        """(Under the lock.) Keep a batch; the first one of an outage says so once."""
        if self._since is None:
            self._since = time.monotonic()
            self.outages += 1
            log.warning("the MLflow server does not answer; keeping metrics to send when it "
                        "does (in memory for up to %.0f s or %d values, then in %s)",
                        undelivered.SPILL_AFTER_S, undelivered.SPILL_AFTER_VALUES, self.folder)
        if not self._kept:
            self._kept_since = time.monotonic()
        self._kept.append(batch)
        self._kept_values += batch.size

    def _write(self, batches: list[Batch]) -> None:
        """Append batches to the run's folder, with the tag that says so."""
        if not batches:
            return
        self.spilled += sum(batch.size for batch in batches)
        undelivered.append(self.folder, [*batches, self._outage_tag()])
        log.warning("wrote %d undelivered metric values to %s", self.spilled, self.folder)

    def _outage_tag(self) -> Batch:
        """The run's `tracking.outage` tag, saying what the outages did so far."""
        return Batch(self.run_id, tags=[RunTag(OUTAGE_TAG, self.summary())])

    def _start(self) -> None:
        with self._lock:
            if self._thread is not None or self._closed:
                return
            self._thread = threading.Thread(target=self._run, name="metric-keeper",
                                            daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                batch, operations = self._watched.get(timeout=0.2)
            except queue.Empty:
                self._tend()
                continue
            self._settle(batch, operations)

    def _settle(self, batch: Batch, operations: RunOperations) -> None:
        """Keep a batch MLflow failed, and every batch watched after it until the watch
        drains: MLflow merges the batches of a buffering window into one request and, when
        it fails, reports the failure to the first only (mlflow/mlflow PR #24953); the
        others report success for values never stored. Sending one twice is harmless."""
        try:
            operations.wait()
            failed = False
        except Exception:  # noqa: BLE001 - MLflow wraps every failure; none may be lost
            failed = True
        with self._lock:
            self._distrust = self._distrust or failed
            if self._distrust:
                self._hold(batch)
            self._unsettled.pop(id(batch), None)
            if not self._unsettled:
                self._distrust = False

    def _tend(self) -> None:
        """Try the server when asked, when it is time (RETRY_S at the end of training), or
        when what is held reaches the bound; past the bound a failed try writes it out."""
        if not self._kept:
            return
        due = self.retry_every is not None and time.monotonic() - self._tried >= self.retry_every
        if not (self._asked.is_set() or due or self._past_bound()):
            return
        self._asked.clear()
        self._tried = time.monotonic()
        if not self._send_kept() and self._past_bound():
            with self._lock:
                batches, self._kept, self._kept_values = self._kept, [], 0
            self._write(batches)

    def _past_bound(self) -> bool:
        with self._lock:
            held_s = time.monotonic() - self._kept_since if self._kept else 0.0
            return (held_s > undelivered.SPILL_AFTER_S
                    or self._kept_values > undelivered.SPILL_AFTER_VALUES)

    def _send_kept(self) -> bool:
        """Send everything held; the outage ends when nothing is left."""
        while True:
            with self._lock:
                self._sending, self._kept, self._kept_values = self._kept, [], 0
                batches = self._sending
            if not batches:
                break
            try:
                self._send(batches)
            except Exception:  # noqa: BLE001 - the server is still away: hold on to them
                with self._lock:
                    self._kept[:0], self._sending = batches, []
                    self._kept_values += sum(batch.size for batch in batches)
                return False
            with self._lock:
                self._sending = []
            self.late_batches += len(batches)
            self.late_values += sum(batch.size for batch in batches)
        self._end_outage()
        return True

    def _end_outage(self) -> None:
        with self._lock:
            if self._since is None:
                return
            self.seconds += time.monotonic() - self._since
            self._since = None
        log.warning("the MLflow server answers again: %s", self.summary())
        tag = self._outage_tag()
        try:
            self._send([tag])
        except Exception:  # noqa: BLE001 - away again: the tag waits with the metrics
            self.keep(tag)

    def _send(self, batches: list[Batch]) -> None:
        """One log_batch a run; a batch the server refuses (a 4xx answer: it answers, but
        will never take it) is logged and counted, not held for ever."""
        for run_id, group in _by_run(batches).items():
            try:
                self.client.log_batch(run_id, *_merged(group))
            except MlflowException as exc:
                if not _refused(exc):
                    raise
                for batch in group:
                    self._send_or_refuse(batch)

    def _send_or_refuse(self, batch: Batch) -> None:
        try:
            self.client.log_batch(batch.run_id, batch.metrics, batch.params, batch.tags)
        except MlflowException as exc:
            if not _refused(exc):
                raise
            self.refused += batch.size
            log.error("the MLflow server refused %d values (%s): %s", batch.size, exc,
                      batch.to_json()[:500])


def _by_run(batches: list[Batch]) -> dict[str, list[Batch]]:
    groups: dict[str, list[Batch]] = {}
    for batch in batches:
        groups.setdefault(batch.run_id, []).append(batch)
    return groups


def _merged(batches: list[Batch]) -> tuple[list[Metric], list[Param], list[RunTag]]:
    """The batches' contents as one log_batch; a param or tag set twice, once (MLflow
    refuses a batch that repeats a key)."""
    metrics = [metric for batch in batches for metric in batch.metrics]
    params = {param.key: param for batch in batches for param in batch.params}
    tags = {tag.key: tag for batch in batches for tag in batch.tags}
    return metrics, list(params.values()), list(tags.values())


def _refused(exc: MlflowException) -> bool:
    """The server answered and said no (bad value, deleted run): sending it again would
    not help. Unreachable, overloaded (5xx, 429) or slow (408) servers are outages."""
    status = exc.get_http_status_code()
    return 400 <= status < 500 and status not in (408, 429)


class KeepingClient(MlflowClient):
    """The logger's MlflowClient: asynchronous batches go through MLflow's queue while the
    server answers, and to the keeper when it does not."""

    def __init__(self, tracking_uri: str, keeper: MetricKeeper):
        super().__init__(tracking_uri)
        self.keeper = keeper

    def log_batch(self, run_id: str, metrics: Iterable[Metric] = (),
                  params: Iterable[Param] = (), tags: Iterable[RunTag] = (),
                  synchronous: bool | None = None) -> RunOperations | None:
        if synchronous is not False:
            return super().log_batch(run_id, metrics, params, tags, synchronous=synchronous)
        batch = Batch(run_id, list(metrics), list(params), list(tags))
        if batch.size == 0:
            return None
        if self.keeper.in_outage:
            self.keeper.keep(batch)
            return None
        operations = super().log_batch(run_id, batch.metrics, batch.params, batch.tags,
                                       synchronous=False)
        self.keeper.watch(batch, operations)
        return operations


class KeepingMLFlowLogger(ContinuedRunLogger):
    """The run's logger (one value per step, ContinuedRunLogger), whose metrics survive a
    server outage (the module docstring says how)."""

    def __init__(self, tracking_uri: str, run_id: str, folder: Path):
        for name, value in HTTP_SETTINGS.items():
            os.environ.setdefault(name, value)  # this worker process's MLflow requests
        super().__init__(tracking_uri=tracking_uri, run_id=run_id, synchronous=False)
        self.keeper = MetricKeeper(MlflowClient(tracking_uri), run_id, folder)
        self._mlflow_client = KeepingClient(tracking_uri, self.keeper)

    @property
    @rank_zero_experiment
    def experiment(self) -> MlflowClient:
        """The client, without Lightning's request for the run's experiment (the run is
        given, its experiment not needed): a server away at the start stops nothing."""
        if not self._initialized:
            mlflow.set_tracking_uri(self._tracking_uri)  # where flush_async_logging goes
            self._initialized = True
        return self._mlflow_client

    def finalize(self, status: str = "success") -> None:
        """Nothing: the launch driver ends the run once testing is done too (Lightning's
        would mark it FINISHED after fit, with requests that fail while the server is away)."""

    def _last_steps(self) -> dict[str, int]:
        """ContinuedRunLogger's read of the run, which cannot be kept for later: a server
        away at the first log is waited for, up to undelivered.SERVER_WAIT_S."""
        deadline = time.monotonic() + undelivered.SERVER_WAIT_S
        while True:
            try:
                return super()._last_steps()
            except MlflowException as exc:
                if _refused(exc) or time.monotonic() >= deadline:
                    raise
                log.warning("the MLflow server does not answer (%s); waiting for it", exc)
                time.sleep(RETRY_S)

    def log_tags(self, tags: dict[str, str]) -> None:
        """Tags, sent and kept like metrics."""
        self.experiment.log_batch(self.run_id, tags=[RunTag(k, v) for k, v in tags.items()],
                                  synchronous=False)

    def flush(self) -> None:
        """Send the queued metrics now; while the server is away, have the keeper try it in
        the background instead (waiting for it here would stop training)."""
        if self.keeper.in_outage:
            self.keeper.ask()
        else:
            mlflow.flush_async_logging()

    def finish(self, artifacts: dict[str, Any], wait_s: float = END_WAIT_S) -> None:
        """At the end of training (rank 0): upload the artifacts and deliver every kept
        batch, waiting up to `wait_s` for a server that is away; what is still undelivered
        then is written to the run's folder for the driver to replay."""
        deadline = time.monotonic() + wait_s
        self.keeper.retry_every = RETRY_S
        self.flush()
        pending = dict(artifacts)
        while pending or not self.keeper.settled():
            if pending and not self.keeper.in_outage:
                try:
                    tracking.log_artifacts(self.experiment, self.run_id, pending)
                    pending = {}
                except Exception as exc:  # noqa: BLE001 - kept for the driver below
                    log.warning("could not upload the run's artifacts yet: %s", exc)
            if time.monotonic() >= deadline:
                break
            time.sleep(0.2 if not pending else RETRY_S)
        self.keeper.close()
        if pending:
            undelivered.save_artifacts(self.keeper.folder, self.run_id, pending)
            log.warning("wrote the run's artifacts to %s for replay", self.keeper.folder)

"""A busy sqlite store: how a run's end waits it out."""

from __future__ import annotations

import sqlite3
import threading
import time

from mlflow.tracking import MlflowClient

from orchestrator import tracking

LOCKED_S = 23  # longer than MLflow's own 20 s sqlite busy timeout


def hold_exclusive_lock(database: str, locked: threading.Event) -> None:
    """Another process's long write, as a sweep's trials ending together make on a busy
    machine: nobody else reads or writes the store meanwhile."""
    connection = sqlite3.connect(database, isolation_level=None)
    connection.execute("BEGIN EXCLUSIVE")
    locked.set()
    time.sleep(LOCKED_S)
    connection.execute("COMMIT")
    connection.close()


def test_a_run_ends_once_a_store_locked_past_mlflows_wait_is_free(tmp_path):
    database = tmp_path / "mlflow.db"
    uri = f"sqlite:///{database}"
    run_id = tracking.start_run(uri, "busy-store", "run", tags={})
    locked = threading.Event()
    holder = threading.Thread(target=hold_exclusive_lock, args=(str(database), locked))
    holder.start()
    locked.wait()
    started = time.monotonic()
    tracking.end_run(uri, run_id, "FINISHED")
    holder.join()
    assert time.monotonic() - started >= LOCKED_S - 1
    assert MlflowClient(uri).get_run(run_id).info.status == "FINISHED"

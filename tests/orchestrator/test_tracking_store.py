"""A shared sqlite store: how a run's end waits out a busy store, and how runs that start
together link their common dataset."""

from __future__ import annotations

import multiprocessing
import sqlite3
import threading
import time

from mlflow.entities import Dataset, DatasetInput
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


PROCESSES, ROUNDS = 4, 15


def link_datasets_in_step(uri: str, run_ids: list[str], barrier, failures) -> None:
    """One trial process: in each round, every process links a new dataset at once."""
    client = MlflowClient(uri)
    for round_, run_id in enumerate(run_ids):
        dataset = Dataset(name="shards", digest=f"digest{round_}", source_type="local",
                          source="{}")
        barrier.wait()
        try:
            tracking.log_dataset_input(client, run_id, DatasetInput(dataset))
        except Exception as exc:  # noqa: BLE001 - counted and reported by the test
            failures.put(f"{run_id}: {exc}"[:200])


def test_runs_that_link_one_dataset_at_once_all_link_it(tmp_path):
    """Plain `log_inputs` lost this race in 35 of 120 calls (4 processes x 30 rounds)."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri)
    experiment = client.create_experiment("sweep")
    runs = [[client.create_run(experiment).info.run_id for _ in range(ROUNDS)]
            for _ in range(PROCESSES)]
    context = multiprocessing.get_context("spawn")
    barrier, failures = context.Barrier(PROCESSES), context.Queue()
    processes = [context.Process(target=link_datasets_in_step,
                                 args=(uri, run_ids, barrier, failures)) for run_ids in runs]
    for process in processes:
        process.start()
    for process in processes:
        process.join(timeout=120)
    assert [process.exitcode for process in processes] == [0] * PROCESSES
    assert failures.empty(), failures.get()
    for run_ids in runs:
        for round_, run_id in enumerate(run_ids):
            [linked] = client.get_run(run_id).inputs.dataset_inputs
            assert linked.dataset.digest == f"digest{round_}"

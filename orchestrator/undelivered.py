"""What a tracking outage kept from MLflow, on disk, and putting it into the run later.

A Train worker keeps the metrics an MLflow server did not take in memory and sends them
again when it answers (`orchestrator.worker.metric_delivery`). Past a bound, SPILL_AFTER_S
of outage or SPILL_AFTER_VALUES values kept, and at the end of training when the server is
still away, they go to the run's storage folder instead, `<ray.storage_path>/<run name>/
undelivered/`:

    metrics.jsonl   one batch a line: {"run_id", "metrics": [[key, value, ms, step]],
                    "params": {key: value}, "tags": {key: value}}
    artifacts/RUN_ID/NAME   what the end of training could not upload (samples, figures)

The launch driver replays the folder once the server answers again; `orchestrator replay
FOLDER` does it by hand. A second replay adds nothing: MLflow's SQL store skips a metric
value it already has, and params and tags are set to the same values.
This module stays free of torch and Lightning: the launch driver and the CLI import it.
"""

from __future__ import annotations

import json
import math
import os
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlflow.entities import Metric, Param, RunTag
from mlflow.tracking import MlflowClient

from orchestrator.errors import OrchestratorError

SPILL_AFTER_S = 600.0  # a worker holds undelivered metrics in memory this long at most...
SPILL_AFTER_VALUES = 50_000  # ...and this many (~20 MB), then writes them to the folder
SERVER_WAIT_S = 600.0  # the launch driver waits this long after training for the server
PROBE_S = 5.0  # how often a waiting driver asks the server's /health
FOLDER = "undelivered"
METRICS_FILE = "metrics.jsonl"
ARTIFACTS = "artifacts"
OUTAGE_TAG = "tracking.outage"  # what a worker's outage did: how long, how much came late
REPLAYED_TAG = "tracking.replayed"  # what a replay put into the run, from where


@dataclass
class Batch:
    """One `log_batch` of a run: what MLflow's queue sends and what an outage keeps."""

    run_id: str
    metrics: list[Metric] = field(default_factory=list)
    params: list[Param] = field(default_factory=list)
    tags: list[RunTag] = field(default_factory=list)

    @property
    def size(self) -> int:
        return len(self.metrics) + len(self.params) + len(self.tags)

    def to_json(self) -> str:
        return json.dumps({
            "run_id": self.run_id,
            "metrics": [[m.key, m.value, m.timestamp, m.step] for m in self.metrics],
            "params": {p.key: p.value for p in self.params},
            "tags": {t.key: t.value for t in self.tags},
        })

    @classmethod
    def from_json(cls, line: str) -> Batch:
        data = json.loads(line)
        return cls(
            data["run_id"],
            [Metric(key, value, ms, step) for key, value, ms, step in data.get("metrics", [])],
            [Param(key, value) for key, value in data.get("params", {}).items()],
            [RunTag(key, value) for key, value in data.get("tags", {}).items()],
        )


def spill_folder(storage_path: str, run_name: str) -> Path:
    """The run's folder next to its Ray Train checkpoints, which the driver and every
    worker see; for remote storage (s3://...), a local temporary folder of the worker."""
    if "://" in storage_path:
        return Path(tempfile.gettempdir()) / "orchestrator-undelivered" / run_name
    return Path(storage_path) / run_name / FOLDER


def append(folder: Path, batches: list[Batch]) -> None:
    """Add batches to the folder's metrics file, on disk before this returns: the worker
    may be stopped right after."""
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / METRICS_FILE, "a", encoding="utf-8") as out:
        out.writelines(batch.to_json() + "\n" for batch in batches)
        out.flush()
        os.fsync(out.fileno())


def save_artifacts(folder: Path, run_id: str, artifacts: dict[str, Any]) -> None:
    """Write what `tracking.log_artifacts` would have uploaded, as the same files."""
    from matplotlib.figure import Figure  # not needed by whoever saves no figure

    for name, artifact in artifacts.items():
        path = folder / ARTIFACTS / run_id / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(artifact, Figure):
            artifact.savefig(path)
        else:
            path.write_text(artifact, encoding="utf-8")


def replay(client: MlflowClient, folder: Path) -> str:
    """Put a spill folder into its runs; returns what it did, in words. The folder is then
    renamed (`undelivered-replayed-TIME`), so a later launch does not send it again."""
    check_folder(folder)
    batches, unreadable = _read_batches(folder / METRICS_FILE)
    values: dict[str, int] = {}
    for batch in batches:
        client.log_batch(batch.run_id, batch.metrics, batch.params, batch.tags)
        values[batch.run_id] = values.get(batch.run_id, 0) + batch.size
    files: dict[str, int] = {}
    for run_folder in sorted((folder / ARTIFACTS).glob("*")):
        client.log_artifacts(run_folder.name, str(run_folder))
        files[run_folder.name] = sum(1 for path in run_folder.rglob("*") if path.is_file())
    done = folder.with_name(f"{folder.name}-replayed-{time.strftime('%Y%m%d-%H%M%S')}")
    folder.rename(done)
    skipped = f" ({unreadable} unreadable lines skipped)" if unreadable else ""
    lines = []
    for run_id in sorted(values.keys() | files.keys()):
        line = (f"{values.get(run_id, 0)} values and {files.get(run_id, 0)} artifacts "
                f"replayed from {done}{skipped}")
        client.set_tag(run_id, REPLAYED_TAG, line)
        lines.append(f"run {run_id}: {line}")
    return "; ".join(lines) or f"nothing to replay in {done}{skipped}"


def check_folder(folder: Path) -> None:
    """Refuse, in one line, a folder that is not a spill folder (before any store opens)."""
    if not (folder / METRICS_FILE).is_file() and not (folder / ARTIFACTS).is_dir():
        raise OrchestratorError(f"{folder} holds no undelivered metrics or artifacts "
                                f"(no {METRICS_FILE}, no {ARTIFACTS}/)")


def _read_batches(path: Path) -> tuple[list[Batch], int]:
    """The file's batches, and how many lines could not be read (a worker stopped in the
    middle of writing one leaves a broken last line)."""
    if not path.is_file():
        return [], 0
    batches, unreadable = [], 0
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            batches.append(Batch.from_json(line))
        except (ValueError, KeyError, TypeError):
            unreadable += 1
    return batches, unreadable


def after_training(uri: str, storage_path: str, run_name: str,
                   wait_s: float = SERVER_WAIT_S) -> None:
    """Before the launch driver logs the checkpoint and reads the results: wait (bounded)
    for a server that does not answer, then replay what the workers could not deliver."""
    folder = spill_folder(storage_path, run_name)
    wait_for_server(uri, wait_s, folder)
    if folder.is_dir():
        print(f"tracking: {replay(MlflowClient(uri), folder)}", file=sys.stderr, flush=True)


def wait_for_server(uri: str, wait_s: float, folder: Path) -> None:
    """Return once an MLflow server answers its /health (a sqlite store always does);
    say once that we wait, and fail in one line past `wait_s`."""
    if not uri.startswith(("http://", "https://")):
        return
    deadline = time.monotonic() + wait_s
    said = False
    while not _answers(uri):
        if time.monotonic() >= deadline:
            raise OrchestratorError(
                f"the MLflow tracking server at {uri} did not answer for {wait_s:.0f} s after "
                f"training; the checkpoints are kept under {folder.parent}, and what the run "
                f"could not log waits in {folder}: once the server answers, run "
                f"`orchestrator replay {folder} tracking.uri={uri}`"
            )
        if not said:
            print(f"tracking: the MLflow server at {uri} does not answer; training has "
                  f"finished, waiting up to {math.ceil(wait_s / 60)} min for it to log the "
                  "results", file=sys.stderr, flush=True)
            said = True
        time.sleep(PROBE_S)


def _answers(uri: str) -> bool:
    """One cheap request, no retries: any HTTP answer (an auth proxy's 401 too) counts."""
    try:
        with urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=PROBE_S):
            return True
    except urllib.error.HTTPError:
        return True
    except OSError:
        return False

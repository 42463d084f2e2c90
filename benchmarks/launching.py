"""Run `orchestrator` as a user would (a subprocess from the repo root) and read the run."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from mlflow.tracking import MlflowClient

ROOT = Path(__file__).resolve().parents[1]
WORK = Path(__file__).resolve().with_name("work")
TRACKING_URI = f"sqlite:///{WORK / 'mlflow.db'}"


@dataclass
class LaunchedRun:
    run_id: str
    metrics: dict[str, float]
    wall_s: float
    tokens_per_s: list[float]


def orchestrator(*args: str) -> str:
    command = [sys.executable, "-m", "orchestrator.cli", *args]
    out = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{out.stderr[-3000:]}")
    return out.stdout


def prepare_once(data: Path, kind: str, *args: str) -> None:
    if not (data / "dataset.json").exists():
        orchestrator("data", "prepare", kind, *args, "--out", str(data))


def launch(config: str, *overrides: str) -> LaunchedRun:
    WORK.mkdir(exist_ok=True)
    started = time.perf_counter()
    stdout = orchestrator(
        "launch", config, f"tracking.uri={TRACKING_URI}", f"ray.storage_path={WORK / 'runs'}",
        "train.progress_bar=false", *overrides,
    )
    wall = time.perf_counter() - started
    run_id = re.search(r"MLflow run: (\w+)", stdout).group(1)
    client = MlflowClient(TRACKING_URI)
    rates = [m.value for m in client.get_metric_history(run_id, "train_tokens_per_sec")]
    return LaunchedRun(run_id, client.get_run(run_id).data.metrics, wall, rates)

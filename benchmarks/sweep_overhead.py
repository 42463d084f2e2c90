"""Per-trial orchestration overhead of `orchestrator sweep` on CPU: a 12-trial sweep of
tiny models (one trial at a time, then two), sweep wall time minus the workers' fit + test
time, per trial. Also keeps a screenshot of the sweep's HTML report next to RESULTS.md.

    python -m benchmarks.sweep_overhead
"""

from __future__ import annotations

import shutil
import subprocess
import time

import yaml
from ray.tune import ExperimentAnalysis

from benchmarks.launching import WORK, orchestrator
from benchmarks.results import RESULTS, append_section

TRIALS = 12
SCREENSHOT = RESULTS.with_name("sweep_report.png")


def sweep_file(concurrent: int) -> dict:
    folder = WORK / "sweep-overhead"
    return {
        "name": f"overhead-{concurrent}",
        "overrides": {
            "data.sample": "grammar", "data.path": str(WORK / "sample-grammar"),
            "data.batch_size": 16, "data.bptt": 32, "model.num_layers": 1,
            "model.embedding_dim": 32, "model.hidden_size": 64, "train.max_epochs": 2,
            "train.batches_per_epoch": 20, "train.progress_bar": False,
            "generate.length": 20, "tracking.uri": f"sqlite:///{folder / 'mlflow.db'}",
        },
        "space": {"model.cell": {"grid": ["rnn", "gru", "lstm"]},
                  "optim.clip": {"grid": [0.5, 5.0]}, "optim.lr": {"grid": [0.003, 0.01]}},
        "scheduler": {"name": "none"},
        "max_concurrent_trials": concurrent,
        "resources": {"workers_per_trial": 1, "cpus_per_worker": 1},
        "storage_path": str(folder / "sweeps"),
    }


def measure(concurrent: int) -> dict:
    """One 12-trial sweep with `concurrent` trials at a time. Training time is the
    workers' fit+test time, divided by the trials running side by side."""
    folder = WORK / "sweep-overhead"
    spec = sweep_file(concurrent)
    path = folder / f"{spec['name']}.yaml"
    path.write_text(yaml.safe_dump(spec))
    started = time.perf_counter()
    orchestrator("sweep", str(path))
    wall = time.perf_counter() - started
    sweep_dir = folder / "sweeps" / spec["name"]
    trials = ExperimentAnalysis(str(sweep_dir)).trials
    fit = sum(trial.last_result["time_fit_test_s"] for trial in trials)
    in_trial = sum(trial.last_result["time_total_s"] for trial in trials)
    if concurrent == 1:
        screenshot(sweep_dir / "report.html")
    return {
        "trials": len(trials),
        "at a time": concurrent,
        "sweep wall s": round(wall),
        "sum fit+test s": round(fit),
        "overhead per trial s": round((wall - fit / concurrent) / len(trials), 1),
        "of which inside the trial s": round((in_trial - fit) / len(trials), 1),
        "goal s": 10,
    }


def main() -> None:
    folder = WORK / "sweep-overhead"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    rows = [measure(1), measure(2)]
    notes = (
        "12 tiny character-LM trials (2 epochs x 20 batches), scheduler none, 1 Train worker "
        "(1 CPU) per trial; one at a time, then two at a time (the default on 2 CPUs). "
        "Overhead = (sweep wall - the workers' fit+test time / trials at a time) / trials; "
        "it includes the CLI's start, Ray start, the sweep's checks, each trial's Train "
        "controller and worker start, MLflow child runs, sample generation and the report. "
        "'Inside the trial' is Tune's time_total_s minus fit+test. Screenshot of the report: "
        "sweep_report.png."
    )
    print(append_section("Sweep orchestration overhead per trial (CPU)", rows, notes))


def screenshot(page) -> None:
    subprocess.run(["chromium", "--headless", "--no-sandbox", "--disable-gpu",
                    f"--screenshot={SCREENSHOT}", "--window-size=1200,2600", page.as_uri()],
                   capture_output=True, timeout=120, check=True)


if __name__ == "__main__":
    main()

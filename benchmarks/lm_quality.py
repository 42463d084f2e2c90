"""Tiny-shakespeare (char LSTM) and PTB (word LSTM, Zaremba et al. small) trained through
`orchestrator launch`, exactly as a user would: val/test numbers, wall time, tokens/s.

    python benchmarks/lm_quality.py [--only ptb] [--shared ../shared/data] [key=value ...]

Extra key=value overrides go to every launch (e.g. train.max_epochs=2 for a smoke run).
"""

from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

from mlflow.tracking import MlflowClient

from benchmarks.results import append_section

ROOT = Path(__file__).resolve().parents[1]
WORK = Path(__file__).resolve().with_name("work")

RUNS = {
    "tinyshakespeare": {
        "config": "configs/tinyshakespeare_char_lstm.yaml",
        "prepare": ["--input", "{shared}/tinyshakespeare/input.txt", "--level", "char",
                    "--sample-tokens", "2048"],
        "anchor": "Karpathy char-rnn (2x512 LSTM, GPU): val loss ~1.4 nats/char ~ 2.0 bpc",
    },
    "ptb": {
        "config": "configs/ptb_word_lstm.yaml",
        "prepare": ["--train", "{shared}/ptb/ptb.train.txt", "--val", "{shared}/ptb/ptb.valid.txt",
                    "--test", "{shared}/ptb/ptb.test.txt", "--level", "word",
                    "--sample-tokens", "4096"],
        "anchor": "Zaremba et al. 2014 small: val 120.7, test 114.5",
    },
}


def orchestrator(*args: str) -> str:
    command = [sys.executable, "-m", "orchestrator.cli", *args]
    out = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{out.stderr[-3000:]}")
    return out.stdout


def run_one(name: str, shared: Path, overrides: list[str]) -> dict[str, object]:
    spec = RUNS[name]
    data = WORK / name
    if not (data / "dataset.json").exists():
        prepare = [arg.format(shared=shared) for arg in spec["prepare"]]
        orchestrator("data", "prepare", "text", *prepare, "--out", str(data))
    uri = f"sqlite:///{WORK / 'mlflow.db'}"
    started = time.perf_counter()
    stdout = orchestrator(
        "launch", spec["config"], f"data.path={data}", f"tracking.uri={uri}",
        f"ray.storage_path={WORK / 'runs'}", "train.progress_bar=false", *overrides,
    )
    wall = time.perf_counter() - started
    run_id = re.search(r"MLflow run: (\w+)", stdout).group(1)
    client = MlflowClient(uri)
    metrics = client.get_run(run_id).data.metrics
    rates = [m.value for m in client.get_metric_history(run_id, "train_tokens_per_sec")]
    row: dict[str, object] = {
        "run": name,
        "val ppl": metrics["val_perplexity"],
        "test ppl": metrics["test_perplexity"],
        "test bpc": metrics.get("test_bpc", "-"),
        "wall s": round(wall),
        "train tokens/s": statistics.median(rates) if rates else "-",
        "MLflow run": run_id[:8],
        "anchor": spec["anchor"],
    }
    print(row, flush=True)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=sorted(RUNS))
    parser.add_argument("--shared", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("overrides", nargs="*")
    args = parser.parse_args()
    WORK.mkdir(exist_ok=True)
    names = [args.only] if args.only else list(RUNS)
    rows = [run_one(name, args.shared.resolve(), args.overrides) for name in names]
    notes = ("Trained on CPU through `orchestrator launch` with the shipped configs"
             + (f", overrides {' '.join(args.overrides)}" if args.overrides else "")
             + ". Test perplexity uses the final weights.")
    print(append_section("Language models on real data", rows, notes))


if __name__ == "__main__":
    main()

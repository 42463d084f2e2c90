"""Tiny-shakespeare (char LSTM) and PTB (word LSTM, Zaremba et al. small) trained through
`orchestrator launch`, exactly as a user would: val/test numbers, wall time, tokens/s.

    python -m benchmarks.lm_quality [--only ptb] [--shared ../shared/data] [key=value ...]

Extra key=value overrides go to every launch (e.g. train.max_epochs=2 for a smoke run).
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

from benchmarks.launching import ROOT, WORK, launch, prepare_once
from benchmarks.results import append_section

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


def run_one(name: str, shared: Path, overrides: list[str]) -> dict[str, object]:
    spec = RUNS[name]
    data = WORK / name
    prepare_once(data, "text", *[arg.format(shared=shared) for arg in spec["prepare"]])
    run = launch(spec["config"], f"data.path={data}", *overrides)
    row: dict[str, object] = {
        "run": name,
        "val ppl": run.metrics["val_perplexity"],
        "test ppl": run.metrics["test_perplexity"],
        "test bpc": run.metrics.get("test_bpc", "-"),
        "wall s": round(run.wall_s),
        "train tokens/s": statistics.median(run.tokens_per_s) if run.tokens_per_s else "-",
        "MLflow run": run.run_id[:8],
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
    notes = ("Trained on CPU through `orchestrator launch` with the shipped config"
             + (f", overrides {' '.join(args.overrides)}" if args.overrides else "")
             + ". Test perplexity uses the best validation epoch's weights.")
    for name in [args.only] if args.only else list(RUNS):
        row = run_one(name, args.shared.resolve(), args.overrides)
        print(append_section(f"Language model on real data: {name}", [row], notes))


if __name__ == "__main__":
    main()

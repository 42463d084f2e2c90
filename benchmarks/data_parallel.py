"""What a second Ray Train worker buys: training tokens/s of 2 workers x 1 thread against
1 worker x 1 thread, on the same data and the same global batch, through `launch`.

    python -m benchmarks.data_parallel [--epochs 4] [--tasks language_model translation]

Goals (issue #15): >= 1.8 for the language model, >= 1.7 for translation. The 1-worker run
takes the global batch on one worker; the 2-worker run splits it in halves, so both train
the same samples per step and per epoch. Tokens/s are TokenThroughput's, summed over ranks.
"""

from __future__ import annotations

import argparse

from benchmarks.lm_throughput import WORK, steady, through_launch
from benchmarks.results import append_section
from orchestrator.config import load_config
from orchestrator.inputs import ensure_dataset, resolve_paths

# the task's sample data and a model of the size the quickstarts train
SETTINGS = {
    "language_model": ["data.sample=grammar", "model.hidden_size=256",
                       "model.embedding_dim=64"],
    "translation": ["data.sample=dates", "model.hidden_size=128", "model.embedding_dim=64",
                    "eval.beam_sizes=[1]", "eval.max_length=16"],
}
STEPS = 60


def rates(task: str, workers: int, epochs: int, global_batch: int) -> list[float]:
    """Tokens/s per epoch of `workers` single-thread workers sharing the global batch."""
    sample = SETTINGS[task][0].split("=")[1]
    config = resolve_paths(load_config(None, [
        f"task={task}", f"data.path={WORK / sample}", *SETTINGS[task],
        f"data.batch_size={global_batch // workers}", f"train.batches_per_epoch={STEPS}",
        f"train.max_epochs={epochs}", f"ray.num_workers={workers}", "ray.cpus_per_worker=1",
        "ray.max_failures=0", f"tracking.uri=sqlite:///{WORK / 'mlflow.db'}",
        f"ray.storage_path={WORK / 'runs'}", f"name=bench-dp-{task}-{workers}w",
    ]))
    ensure_dataset(config)
    return through_launch(config)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--global-batch", type=int, default=32)
    parser.add_argument("--tasks", nargs="+", choices=sorted(SETTINGS), default=sorted(SETTINGS))
    args = parser.parse_args()
    WORK.mkdir(exist_ok=True)
    rows, ratios = [], []
    for task in args.tasks:
        one, two = (rates(task, workers, args.epochs, args.global_batch) for workers in (1, 2))
        one_rate, two_rate = steady(one), steady(two)
        ratios.append(f"{task} {two_rate / one_rate:.2f}")
        rows.append({"task": task, "1 worker tokens/s": one_rate, "2 workers tokens/s": two_rate,
                     "2 / 1": round(two_rate / one_rate, 3),
                     "per epoch (1 worker; 2 workers)": ", ".join(f"{r:.0f}" for r in one)
                     + "; " + ", ".join(f"{r:.0f}" for r in two)})
    notes = (f"2 workers / 1 worker: **{', '.join(ratios)}** (goals: language model >= 1.8, "
             f"translation >= 1.7). 1 thread per worker, global batch {args.global_batch} "
             f"(1 x {args.global_batch} or 2 x {args.global_batch // 2}), {STEPS} steps per epoch, "
             f"{args.epochs} epochs, the tasks' generated sample data, through `launch` "
             "on one local Ray instance.")
    print(append_section("Data-parallel efficiency: 2 Ray workers vs 1", rows, notes))


if __name__ == "__main__":
    main()

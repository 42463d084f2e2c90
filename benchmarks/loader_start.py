"""How long a loader worker takes to give its first batch inside a Ray worker, when the
fork server imports the DataModule's module (and with it Lightning) once, against each
worker importing it on its own to unpickle the pipeline. Run: python -m benchmarks.loader_start
"""

from __future__ import annotations

import argparse
import time

import ray

from benchmarks.launching import WORK, prepare_once
from benchmarks.results import append_section
from orchestrator.datasets.synthetic import grammar_text

DATA = WORK / "loader_start_text"


@ray.remote(num_cpus=1, max_calls=1)  # a fresh process, so a fresh fork server, per call
def first_batch_seconds(preload_reader: bool) -> tuple[float, float]:
    """Seconds to the first validation batch (the fork server starts here) and then to the
    first training batch (a second worker, from the running fork server)."""
    from orchestrator.datasets import streaming
    from orchestrator.datasets.language_model_data import LanguageModelDataModule

    if not preload_reader:  # what every loader did before: only torch and webdataset
        preloading = streaming.worker_processes
        streaming.worker_processes = lambda workers, reader_module=None: preloading(workers)
    datamodule = LanguageModelDataModule(str(DATA), batch_size=4, bptt=16, num_workers=1)
    seconds = []
    for make_loader in (datamodule.val_dataloader, datamodule.train_dataloader):
        started = time.perf_counter()
        next(iter(make_loader()))
        seconds.append(time.perf_counter() - started)
    return seconds[0], seconds[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=4)
    args = parser.parse_args()
    corpus = WORK / "loader_start_corpus.txt"
    WORK.mkdir(exist_ok=True)
    corpus.write_text(grammar_text(20_000, seed=4))
    prepare_once(DATA, "text", "--input", str(corpus), "--level", "char",
                 "--sample-tokens", "97", "--samples-per-shard", "20", "--val-fraction", "0.2")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    rows = []
    for round_ in range(args.rounds):  # interleaved, so a machine slowdown hits both
        for preload_reader in (False, True):
            val_s, train_s = ray.get(first_batch_seconds.remote(preload_reader))
            rows.append({"round": round_, "fork server imports": (
                "torch, webdataset, the DataModule's module" if preload_reader
                else "torch, webdataset"), "first val batch s": round(val_s, 2),
                "first train batch s": round(train_s, 2)})
            print(rows[-1], flush=True)
    append_section("Loader worker start inside a Ray worker (CPU)", rows, notes=(
        "One loader worker per loader, LM DataModule on a generated char corpus; each call a "
        "fresh Ray worker process. The validation loader's first batch includes starting "
        "the fork server; the training loader's is one more worker from it."))


if __name__ == "__main__":
    main()

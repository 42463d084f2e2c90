"""What two single-thread processes get from this machine against one: the ceiling of any
2-worker / 1-worker ratio here. Each process runs one kind of work for a fixed time, one
thread: small matrix products that live in cache (compute-bound, like the language
model's 60-symbol layers), and Adam-like passes over tensors far larger than the caches
(memory-bound, like a translator's 10 M-parameter embeddings, output layer and optimiser
step). Two processes that share nothing but the hardware should give 2x each.

    python -m benchmarks.core_scaling [--seconds 10]
"""

from __future__ import annotations

import argparse
import multiprocessing
import time

import torch

from benchmarks.results import append_section


def in_cache(seconds: float) -> float:
    """256 x 256 matrix products per second (8 MFLOP each; 768 KB of operands)."""
    a, b = torch.randn(256, 256), torch.randn(256, 256)
    return _rate(lambda: torch.mm(a, b), seconds)


def from_memory(seconds: float) -> float:
    """Passes per second of p += 0.1 * g over 10 M floats (80 MB read, 40 MB written)."""
    p, g = torch.randn(10_000_000), torch.randn(10_000_000)
    return _rate(lambda: p.add_(g, alpha=0.1), seconds)


def _rate(work, seconds: float) -> float:
    torch.set_num_threads(1)
    work()
    done, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        work()
        done += 1
    return done / (time.perf_counter() - started)


def _run(kind: str, seconds: float, processes: int) -> float:
    """Summed rate of `processes` processes running `kind` at once."""
    work = {"in_cache": in_cache, "from_memory": from_memory}[kind]
    with multiprocessing.get_context("spawn").Pool(processes) as pool:
        return sum(pool.starmap(work, [(seconds,)] * processes))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()
    rows = []
    for kind, what in (("in_cache", "256x256 matmuls/s"), ("from_memory", "10M-float passes/s")):
        one, two = _run(kind, args.seconds, 1), _run(kind, args.seconds, 2)
        rows.append({"work": kind.replace("_", " "), "unit": what, "1 process": round(one, 1),
                     "2 processes (sum)": round(two, 1), "2 / 1": round(two / one, 2)})
        print(rows[-1], flush=True)
    notes = ("One thread per process, each kind for the same time, 1 process then 2 at once; "
             "nothing else running. The 2 / 1 of memory-bound work bounds what a second Ray "
             "worker can add to a model whose steps stream large tensors.")
    print(append_section("Two single-thread processes against one (the machine's ceiling)",
                         rows, notes))


if __name__ == "__main__":
    main()

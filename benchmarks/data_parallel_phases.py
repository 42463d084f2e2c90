"""Where a data-parallel training step's time goes: loading, forward, backward, the wait
for the slower rank, the gradient all-reduce and the optimiser step, timed apart, for 1
process and for 2 processes (torch.distributed over gloo, as Lightning's DDP uses on CPU),
on the same model and global batch. No Ray, no Lightning: this is the ceiling over
`benchmarks.data_parallel`'s ratio.

    python -m benchmarks.data_parallel_phases [--steps 30] [--global-batch 32] [--accumulate 4]
                                              [--divide accumulation] [--unfused] [--ddp]

Each process runs 1 thread, its own loader (the task's DataModule, rank-aware) and the task
module's own training loss, like a launch's worker. `--divide` splits an optimiser step's
samples between the 2 processes as `benchmarks.data_parallel` does, so the two ratios
compare. The all-reduce sums the gradients in ~25 MB flat buckets, as DDP does, but after
the backward pass instead of overlapped with it, so its cost shows on its own; `--ddp`
wraps the model in DistributedDataParallel instead, as Lightning does.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import time
from collections import defaultdict
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch.nn.parallel import DistributedDataParallel

from benchmarks.data_parallel import (
    CONFIG_FILES,
    DIVIDES,
    SETTINGS,
    case_overrides,
    prepare_multi30k,
    worker_share,
)
from benchmarks.launching import ROOT
from benchmarks.lm_throughput import WORK
from benchmarks.results import append_section
from orchestrator.config import ExperimentConfig, load_config
from orchestrator.inputs import ensure_dataset, resolve_paths
from orchestrator.lightning_modules.optimizers import configure_optimizers
from orchestrator.lightning_modules.throughput import tokens_in
from orchestrator.worker.tasks import TASKS

PHASES = ("load", "forward", "backward", "wait", "all-reduce", "optimiser")
BUCKET_BYTES = 25 * 2**20  # DDP's default bucket_cap_mb
WARMUP = 5


def config_for(case: str, batch_size: int, batches: int) -> ExperimentConfig:
    return resolve_paths(load_config(CONFIG_FILES.get(case),
                                     case_overrides(case, batch_size, batches)))


def buckets(parameters: list[torch.nn.Parameter]) -> list[list[torch.nn.Parameter]]:
    """The parameters in groups of about BUCKET_BYTES, each all-reduced as one tensor."""
    groups: list[list[torch.nn.Parameter]] = [[]]
    size = 0
    for parameter in parameters:
        if size and size + parameter.numel() * 4 > BUCKET_BYTES:
            groups.append([])
            size = 0
        groups[-1].append(parameter)
        size += parameter.numel() * 4
    return groups


def all_reduce_gradients(groups: list[list[torch.nn.Parameter]], world: int) -> None:
    for group in groups:
        flat = torch.cat([p.grad.reshape(-1) for p in group])
        dist.all_reduce(flat)
        flat /= world
        offset = 0
        for p in group:
            p.grad.copy_(flat[offset:offset + p.numel()].view_as(p.grad))
            offset += p.numel()


def timed_steps(rank: int, world: int, case: str, options: dict, results: dict) -> None:
    """One process's timed batches; rank 0 puts the mean seconds per batch of each phase in
    `results` (the all-reduce and the optimiser come once per `accumulate` batches)."""
    torch.set_num_threads(1)
    if world > 1:
        os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(29500 + world))
        dist.init_process_group("gloo", rank=rank, world_size=world)
    steps = options["steps"]
    batch_size, accumulate = worker_share(world, options["global_batch"],
                                          options["accumulate"], options["divide"])
    config = config_for(case, batch_size, (steps + WARMUP) * accumulate)
    torch.manual_seed(config.seed)  # the same initial weights on every rank
    task = TASKS[config.task]
    datamodule = task.build_datamodule(config)
    datamodule.setup("fit")
    module = task.build_module(config, datamodule).train()
    parameters = [p for p in module.parameters() if p.requires_grad]
    ddp = options["ddp"] and world > 1
    if ddp:  # as Lightning wraps it: buckets all-reduced while the backward pass goes on
        module.model = DistributedDataParallel(module.model, broadcast_buffers=False)
    model = module.model
    optimizer = (torch.optim.Adam(parameters, lr=config.optim.lr) if options["unfused"] else
                 configure_optimizers(parameters, config.optim.model_dump())["optimizer"])
    groups, spent, tokens = buckets(parameters), defaultdict(float), 0
    batches = iter(datamodule.train_dataloader())
    for step in range(steps + WARMUP):
        marks = defaultdict(float)
        optimizer.zero_grad(set_to_none=False)
        for index in range(accumulate):
            started = time.perf_counter()
            batch = next(batches)
            marks["load"] += time.perf_counter() - started
            # DDP exchanges gradients in the backward pass of a step's last batch only
            last = index == accumulate - 1
            with model.no_sync() if ddp and not last else contextlib.nullcontext():
                trained = train_batch(module, batch, index, marks)
            tokens += trained if step >= WARMUP else 0
        if world > 1 and not ddp:
            started = time.perf_counter()
            dist.barrier()  # the time this rank waits for a slower one, apart from the transfer
            marks["wait"] += time.perf_counter() - started
            started = time.perf_counter()
            all_reduce_gradients(groups, world)
            marks["all-reduce"] += time.perf_counter() - started
        started = time.perf_counter()
        torch.nn.utils.clip_grad_norm_(parameters, config.optim.clip or float("inf"))
        optimizer.step()
        marks["optimiser"] += time.perf_counter() - started
        for phase in PHASES if step >= WARMUP else ():
            spent[phase] += marks[phase]
    if rank == 0:
        timed_batches = steps * accumulate
        results.update({phase: spent[phase] / timed_batches for phase in PHASES},
                       tokens_per_s=tokens * world / sum(spent.values()),
                       parameters=sum(p.numel() for p in parameters))
    if world > 1:
        dist.destroy_process_group()


def train_batch(module: torch.nn.Module, batch: dict, index: int,
                marks: dict[str, float]) -> int:
    """Forward and backward of one batch through the task module's training loss, adding
    each phase's seconds to `marks`; returns the batch's target tokens."""
    started = time.perf_counter()
    loss = module.training_step(batch, index)
    forward_done = time.perf_counter()
    loss.backward()
    marks["forward"] += forward_done - started
    marks["backward"] += time.perf_counter() - forward_done
    return tokens_in(batch)


def profile(case: str, world: int, options: dict) -> dict:
    with mp.Manager() as manager:
        results = manager.dict()
        mp.spawn(timed_steps, args=(world, case, options, results), nprocs=world)
        return dict(results)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=30, help="timed optimiser steps")
    parser.add_argument("--global-batch", type=int, default=32)
    parser.add_argument("--accumulate", type=int, default=1, help="batches per optimiser step")
    parser.add_argument("--divide", choices=DIVIDES, default="batch",
                        help="what 2 processes split: each batch, or the accumulated batches")
    parser.add_argument("--unfused", action="store_true",
                        help="torch's default Adam loop instead of the fused step a launch uses")
    parser.add_argument("--ddp", action="store_true",
                        help="DistributedDataParallel's overlapped exchange (inside backward)")
    parser.add_argument("--case", choices=sorted(SETTINGS), default="translation-multi30k")
    parser.add_argument("--shared", type=Path, default=ROOT.parent / "shared" / "data")
    args = parser.parse_args()
    WORK.mkdir(exist_ok=True)
    if SETTINGS[args.case][1] == "multi30k":
        prepare_multi30k(args.shared.resolve())
    else:
        ensure_dataset(config_for(args.case, args.global_batch, args.steps))
    options = {"steps": args.steps, "global_batch": args.global_batch,
               "accumulate": args.accumulate, "divide": args.divide,
               "unfused": args.unfused, "ddp": args.ddp}
    rows, measured = [], {}
    for world in (1, 2):
        measured[world] = profile(args.case, world, options)
        batch_size, accumulate = worker_share(world, args.global_batch, args.accumulate,
                                              args.divide)
        rows.append({"processes x batch x accumulated": f"{world} x {batch_size} x {accumulate}",
                     **{f"{phase} ms": round(1000 * measured[world][phase], 1)
                        for phase in PHASES},
                     "batch ms": round(1000 * sum(measured[world][p] for p in PHASES), 1),
                     "tokens/s": round(measured[world]["tokens_per_s"])})
        print(rows[-1], flush=True)
    ratio = measured[2]["tokens_per_s"] / measured[1]["tokens_per_s"]
    optimiser = "torch's default Adam loop" if args.unfused else "fused Adam (as a launch)"
    exchange = ("DistributedDataParallel, whose all-reduce overlaps the backward pass (counted "
                "there)" if args.ddp else "one all-reduce after the backward pass")
    notes = (f"{args.case}, {measured[1]['parameters'] / 1e6:.1f} M parameters, "
             f"{args.global_batch * args.accumulate} samples per optimiser step, "
             f"{optimiser}, {exchange}, {args.steps} timed optimiser steps after {WARMUP}, "
             f"1 thread per process, gloo on loopback, no Ray and no Lightning. Mean ms per "
             f"batch by phase (all-reduce and optimiser once per step, spread over its "
             f"batches); 2 / 1 tokens/s = **{ratio:.2f}**.")
    print(append_section("Data-parallel batch by phase (plain torch.distributed)", rows,
                         notes))


if __name__ == "__main__":
    main()

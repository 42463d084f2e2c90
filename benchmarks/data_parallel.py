"""What a second Ray Train worker buys: training tokens/s of 2 workers x 1 thread against
1 worker x 1 thread, on the same data and the same global batch, through `launch`.

    python -m benchmarks.data_parallel [--epochs 4] [--accumulate 1] [--repeats 3] [--nodes]
                                       [--profile]
                                       [--tasks language_model translation
                                                translation-multi30k multi30k-config]

Goals (issue #15): >= 1.8 for the language model, >= 1.7 for translation, and the 2-node
case (`--nodes`: the 2 workers once more, each on a node of its own). The 1-worker run
takes the global batch on one worker; the 2-worker run splits it in halves, so both train
the same samples per step and per epoch. Tokens/s are TokenThroughput's, summed over ranks.
With `--accumulate N` both add up N batches per optimiser step
(`train.accumulate_grad_batches`), so the workers exchange gradients once per N batches.
`--divide accumulation` keeps each worker's batch at the global batch and divides the N
batches between the workers instead (how a run usually scales out: the same per-device
batch, fewer accumulated batches); each optimiser step still trains the same samples.
One launch's rate moves by up to 10% from one launch to the next on this machine, so
`--repeats N` runs the 1- and 2-worker launches N times in turn and reports the median of
the N paired ratios and their range.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
from collections.abc import Iterator
from pathlib import Path

from benchmarks.launching import ROOT, prepare_once
from benchmarks.lm_throughput import WORK, steady, through_launch
from benchmarks.process_cpu import ProcessCPU
from benchmarks.results import append_section
from orchestrator.config import load_config
from orchestrator.inputs import ensure_dataset, resolve_paths

# each case: its task, its data folder under WORK, and a model of the size its configs train
SETTINGS = {
    "language_model": ("language_model", "grammar", [
        "data.sample=grammar", "model.hidden_size=256", "model.embedding_dim=64"]),
    "translation": ("translation", "dates", [
        "data.sample=dates", "model.hidden_size=128", "model.embedding_dim=64",
        "eval.beam_sizes=[1]", "eval.max_length=16"]),
    # the sizes of configs/multi30k_de_en_cpu.yaml's model, but the default LSTM cell (the
    # config's is a GRU), kept so that rows stay comparable; the data from `prepare_multi30k`
    "translation-multi30k": ("translation", "multi30k", [
        "model.hidden_size=512", "model.embedding_dim=256", "model.bidirectional=true",
        "model.attention=general", "eval.beam_sizes=[1]", "eval.val_bleu_batches=2"]),
    # configs/multi30k_de_en_cpu.yaml as shipped (GRU, softmax tied to the target embedding)
    "multi30k-config": ("translation", "multi30k", [
        "eval.beam_sizes=[1]", "eval.val_bleu_batches=2"]),
}
# the config file a case starts from; the others start from the defaults
CONFIG_FILES = {"multi30k-config": ROOT / "configs" / "multi30k_de_en_cpu.yaml"}
STEPS = 60


def prepare_multi30k(shared: Path) -> None:
    """Multi30k de-en shards (the same preparation as benchmarks/multi30k.py)."""
    raw = shared / "multi30k"
    prepare_once(WORK / "multi30k", "translation", "-s", "de", "-t", "en",
                 "--train", str(raw / "train"), "--val", str(raw / "val"),
                 "--test", str(raw / "test_2016_flickr"), "--min-freq", "2")


def case_overrides(case: str, batch_size: int, batches: int) -> list[str]:
    """The case's task, data and model, each worker taking `batch_size` samples a batch,
    `batches` batches per epoch."""
    task, folder, settings = SETTINGS[case]
    return [f"task={task}", f"data.path={WORK / folder}", *settings,
            f"data.batch_size={batch_size}", f"train.batches_per_epoch={batches}"]


DIVIDES = ("batch", "accumulation")  # what the workers split; see worker_share


def worker_share(workers: int, global_batch: int, accumulate: int,
                 divide: str) -> tuple[int, int]:
    """Each worker's batch size and batches per optimiser step; either way a step trains
    global_batch x accumulate samples over all workers."""
    if divide == "batch":
        return global_batch // workers, accumulate
    if accumulate % workers:
        raise SystemExit(f"error: --accumulate {accumulate} cannot be divided between "
                         f"{workers} workers")
    return global_batch, accumulate // workers


def rates(case: str, workers: int, epochs: int, global_batch: int, accumulate: int,
          divide: str, address: str | None = None) -> list[float]:
    """Tokens/s per epoch of `workers` single-thread workers sharing each optimiser step,
    on the Ray cluster at `address` or a local instance."""
    batch_size, accumulate = worker_share(workers, global_batch, accumulate, divide)
    config = resolve_paths(load_config(CONFIG_FILES.get(case), [
        *case_overrides(case, batch_size, STEPS), f"train.max_epochs={epochs}",
        f"train.accumulate_grad_batches={accumulate}",
        f"ray.num_workers={workers}", "ray.cpus_per_worker=1",
        "ray.max_failures=0", f"tracking.uri=sqlite:///{WORK / 'mlflow.db'}",
        f"ray.storage_path={WORK / 'runs'}", f"name=bench-dp-{case}-{workers}w",
        *([f"ray.address={address}"] if address else []),
    ]))
    ensure_dataset(config)
    return through_launch(config)


@contextlib.contextmanager
def two_nodes() -> Iterator[str]:
    """The address of a fresh two-node `ray.cluster_utils.Cluster` on this machine, 1 CPU
    per node, so that each of 2 workers runs on a node of its own (two raylets and object
    stores, as on a real cluster, minus the network). `launch` joins it by address."""
    import ray
    from ray.cluster_utils import Cluster

    ray.shutdown()  # the local instance of the runs before
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    try:
        cluster.add_node(num_cpus=1)
        yield cluster.address
    finally:
        ray.shutdown()
        cluster.shutdown()


def launches(task: str, args: argparse.Namespace) -> tuple[dict[str, list[list[float]]],
                                                           list[str]]:
    """Each column's tokens/s per epoch of every repeat (1 worker, 2 workers, then 2 nodes,
    in turn), and with --profile the CPU profiles of the first repeat's 1- and 2-worker
    launches."""
    def run(workers: int, address: str | None = None) -> list[float]:
        return rates(task, workers, args.epochs, args.global_batch, args.accumulate,
                     args.divide, address)

    profiles: list[str] = []
    epochs: dict[str, list[list[float]]] = {"1 worker": [], "2 workers": []}
    for repeat in range(args.repeats):
        for workers, column in ((1, "1 worker"), (2, "2 workers")):
            # sampling /proc costs the driver CPU: only the launches reported are sampled
            profiled = args.profile and repeat == 0
            with ProcessCPU() if profiled else contextlib.nullcontext() as cpu:
                epochs[column].append(run(workers))
            if profiled:
                profiles.append(cpu.table(f"{task}, {workers} worker(s)"))
        if args.nodes:
            with two_nodes() as address:
                epochs.setdefault("2 nodes", []).append(run(2, address))
    return epochs, profiles


def measure_task(task: str, args: argparse.Namespace) -> tuple[dict[str, object], str,
                                                               list[str]]:
    """One task's table row, its ratios for the notes, and its CPU profiles. Rates are
    medians over the repeats; a ratio is the median of each repeat's own ratio."""
    epochs, profiles = launches(task, args)
    rate = {column: [steady(values) for values in runs] for column, runs in epochs.items()}

    def ratio(column: str) -> tuple[float, str]:
        paired = [two / one for one, two in zip(rate["1 worker"], rate[column], strict=True)]
        spread = f" ({min(paired):.2f}-{max(paired):.2f})" if len(paired) > 1 else ""
        return statistics.median(paired), spread

    two_one, spread = ratio("2 workers")
    row = {"task": task, "1 worker tokens/s": statistics.median(rate["1 worker"]),
           "2 workers tokens/s": statistics.median(rate["2 workers"]),
           "2 / 1": f"{two_one:.3f}{spread}"}
    summary = f"{task} {two_one:.2f}{spread}"
    if args.nodes:
        nodes_one, nodes_spread = ratio("2 nodes")
        row |= {"2 workers on 2 nodes tokens/s": statistics.median(rate["2 nodes"]),
                "2 nodes / 1": f"{nodes_one:.3f}{nodes_spread}"}
        summary += f" (on 2 nodes {nodes_one:.2f}{nodes_spread})"
    row[f"per epoch ({'; '.join(epochs)}; launches apart by /)"] = "; ".join(
        " / ".join(", ".join(f"{value:.0f}" for value in values) for values in runs)
        for runs in epochs.values())
    return row, summary, profiles


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--global-batch", type=int, default=32)
    parser.add_argument("--accumulate", type=int, default=1,
                        help="batches per optimiser step (train.accumulate_grad_batches)")
    parser.add_argument("--repeats", type=int, default=1,
                        help="1- and 2-worker launches, in turn, this many times each")
    parser.add_argument("--divide", choices=DIVIDES, default="batch",
                        help="what 2 workers split: each batch, or the accumulated batches")
    parser.add_argument("--tasks", nargs="+", choices=sorted(SETTINGS),
                        default=["language_model", "translation"])
    parser.add_argument("--nodes", action="store_true",
                        help="also run the 2 workers on a 2-node ray.cluster_utils.Cluster")
    parser.add_argument("--profile", action="store_true",
                        help="also report user/system CPU seconds per process kind")
    parser.add_argument("--shared", type=Path, default=ROOT.parent / "shared" / "data",
                        help="where multi30k/ is, for the Multi30k cases")
    args = parser.parse_args()
    WORK.mkdir(exist_ok=True)
    if any(SETTINGS[task][1] == "multi30k" for task in args.tasks):
        prepare_multi30k(args.shared.resolve())
    rows, ratios, profiles = [], [], []
    for task in args.tasks:
        row, ratio, task_profiles = measure_task(task, args)
        rows.append(row)
        ratios.append(ratio)
        profiles += task_profiles
    repeats = (f"median of {args.repeats} interleaved launch pairs (range of the paired "
               "ratios)" if args.repeats > 1 else "one launch each")
    notes = (f"2 workers / 1 worker: **{', '.join(ratios)}**, {repeats} (goals: language "
             f"model >= 1.8, translation >= 1.7). 1 thread per worker, {split_note(args)}, "
             f"{STEPS} batches per epoch and worker, "
             f"{args.epochs} epochs, the tasks' generated sample data (translation-multi30k: "
             "Multi30k de-en, configs/multi30k_de_en_cpu.yaml's model sizes with an LSTM "
             "cell and no tied softmax; multi30k-config: that config as shipped), through "
             "`launch` on one local Ray instance"
             + ("; the 2-node runs on a `ray.cluster_utils.Cluster` of two 1-CPU nodes on "
                "this machine, one worker each." if args.nodes else "."))
    if args.profile:
        notes += ("\n\nCPU seconds per process kind over each whole launch of the first "
                  "repeat (start-up, validation and test included):\n\n"
                  + "\n\n".join(profiles))
    print(append_section("Data-parallel efficiency: 2 Ray workers vs 1", rows, notes))


def split_note(args: argparse.Namespace) -> str:
    """How the 1- and 2-worker runs share an optimiser step's samples, for the notes."""
    shares = []
    for workers in (1, 2):
        batch, accumulate = worker_share(workers, args.global_batch, args.accumulate,
                                         args.divide)
        shares.append(f"{workers} x {batch} x {accumulate}")
    return (f"{args.global_batch * args.accumulate} samples per optimiser step (workers x "
            f"batch x accumulated batches: {' or '.join(shares)})")


if __name__ == "__main__":
    main()

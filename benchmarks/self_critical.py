"""Self-critical sequence training against cross-entropy on the Flickr8k subset, each a real
`orchestrator launch` of configs/flickr8k_efficientnet_cpu.yaml.

1. cross-entropy as shipped (the starting point);
2. SCST from its best checkpoint (`train.objective=scst`, `train.init_from`);
3. the control: cross-entropy for as many more epochs from the same checkpoint, so that a
   gain is SCST's and not the extra epochs'.
Every run's tested weights are its best validation CIDEr-D epoch (80 val images).

    python -m benchmarks.self_critical [--data benchmarks/work/flickr8k] [--xe-epochs 30]
        [--scst-epochs 30] [--scst-lr 1e-4] [--scst-baseline mean|greedy]

The defaults are the recipe that met issue #18's goal (benchmarks/RESULTS.md, 2026-12-06).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from benchmarks.results import append_section
from orchestrator.config import load_config
from orchestrator.launch import LaunchResult, launch

CONFIG = Path(__file__).parents[1] / "configs" / "flickr8k_efficientnet_cpu.yaml"


def _launch(name: str, overrides: list[str]) -> tuple[LaunchResult, float]:
    started = time.perf_counter()
    result = launch(load_config(str(CONFIG), [f"name={name}", *overrides]))
    return result, time.perf_counter() - started


def _row(training: str, result: LaunchResult, wall: float, baseline: float | None,
         ) -> dict[str, object]:
    metrics = result.metrics
    cider = metrics["test_cider_d_beam3"]
    return {"training": training, "test CIDEr-D beam 3": round(cider, 4),
            "vs cross-entropy": "" if baseline is None else f"{cider / baseline - 1:+.1%}",
            "test CIDEr-D beam 1": round(metrics["test_cider_d_beam1"], 4),
            "test BLEU-4 beam 3": round(metrics["test_bleu_4_beam3"], 4),
            "launch wall s": round(wall), "MLflow run": result.run_id[:8]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("benchmarks/work/flickr8k"))
    parser.add_argument("--workdir", type=Path, default=Path("benchmarks/work/scst"))
    parser.add_argument("--scst-epochs", type=int, default=30)
    parser.add_argument("--scst-lr", type=float, default=1e-4)
    parser.add_argument("--scst-baseline", choices=["mean", "greedy"], default="mean")
    parser.add_argument("--xe-epochs", type=int, default=30,
                        help="cross-entropy epochs before SCST (the config ships 20)")
    args = parser.parse_args()
    workdir = args.workdir.resolve()
    common = [f"data.path={args.data.resolve()}", f"tracking.uri=sqlite:///{workdir}/mlflow.db",
              f"ray.storage_path={workdir}/runs"]
    cross_entropy, wall = _launch("flickr8k-xe", [*common, f"train.max_epochs={args.xe_epochs}"])
    start = cross_entropy.metrics["test_cider_d_beam3"]
    rows = [_row(f"cross-entropy ({args.xe_epochs} epochs)", cross_entropy, wall, None)]
    print(rows[-1], flush=True)
    more = [*common, f"train.init_from={cross_entropy.checkpoint}",
            f"train.max_epochs={args.scst_epochs}"]
    scst, wall = _launch("flickr8k-scst", [*more, "train.objective=scst",
                                           f"train.scst.baseline={args.scst_baseline}",
                                           f"optim.lr={args.scst_lr}"])
    rows.append(_row(f"SCST, {args.scst_epochs} epochs from it (5 samples, "
                     f"{args.scst_baseline} baseline, lr {args.scst_lr:g})", scst, wall, start))
    print(rows[-1], flush=True)
    control, wall = _launch("flickr8k-xe-more", more)
    rows.append(_row(f"cross-entropy, {args.scst_epochs} more epochs from it (lr 5e-4)",
                     control, wall, start))
    print(rows[-1], flush=True)
    notes = ("configs/flickr8k_efficientnet_cpu.yaml (frozen packaged EfficientNet-Lite0, "
             "LSTM 512 with soft attention; 640 train / 80 val / 80 test images, 5 references "
             "each). Test scores are pycocoevalcap's (PTB tokenizer; CIDEr-D document "
             "frequencies from the test references); SCST's reward is CIDEr-D with document "
             "frequencies from the training references. The goal is SCST >= +10% relative "
             "test CIDEr-D over cross-entropy.")
    print(append_section("Self-critical sequence training (Flickr8k subset)", rows, notes))


if __name__ == "__main__":
    main()

"""Self-critical sequence training against cross-entropy on the Flickr8k subset, each a real
`orchestrator launch` of configs/flickr8k_efficientnet_cpu.yaml.

1. cross-entropy as shipped (the starting point);
2. SCST from its best checkpoint (`train.objective=scst`, `train.init_from`);
3. the control: cross-entropy for as many more epochs from the same checkpoint, so that a
   gain is SCST's and not the extra epochs'.
Every run's tested weights are its best validation CIDEr-D epoch (80 val images). How sure
a gain is: a paired bootstrap over the test images, from each run's per-image CIDEr-D
(its `test_captions.jsonl` artifact).

    python -m benchmarks.self_critical [--data benchmarks/work/flickr8k] [--xe-epochs 30]
        [--scst-epochs 30] [--scst-lr 1e-4] [--scst-baseline mean|greedy]

The defaults are the recipe that met issue #18's goal (benchmarks/RESULTS.md, 2026-12-06).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
from mlflow.tracking import MlflowClient
from scipy.stats import bootstrap

from benchmarks.results import append_section
from orchestrator.config import load_config
from orchestrator.launch import LaunchResult, launch
from orchestrator.lightning_modules.captioning import CAPTIONS_FILE

CONFIG = Path(__file__).parents[1] / "configs" / "flickr8k_efficientnet_cpu.yaml"


def _launch(name: str, overrides: list[str]) -> tuple[LaunchResult, float]:
    started = time.perf_counter()
    result = launch(load_config(str(CONFIG), [f"name={name}", *overrides]))
    return result, time.perf_counter() - started


def paired_gain(new: dict[str, float], old: dict[str, float]) -> tuple[float, float, float,
                                                                       float]:
    """The relative gain of new's mean score over old's, the 95% interval of a paired
    bootstrap over the items (10,000 resamples, percentile) and the share of resamples
    with a gain above 0: both runs scored the same items, so each resample keeps pairs."""
    if set(new) != set(old):
        raise ValueError("the two runs scored different items")
    ids = sorted(new)
    pairs = (np.array([new[i] for i in ids]), np.array([old[i] for i in ids]))

    def gain(a: np.ndarray, b: np.ndarray, axis: int = -1) -> np.ndarray:
        return a.mean(axis=axis) / b.mean(axis=axis) - 1

    result = bootstrap(pairs, gain, paired=True, vectorized=True, n_resamples=10_000,
                       method="percentile", rng=np.random.default_rng(0))
    interval = result.confidence_interval
    return (float(gain(*pairs)), float(interval.low), float(interval.high),
            float((result.bootstrap_distribution > 0).mean()))


def item_scores(tracking_uri: str, run_id: str, beam: int = 3) -> dict[str, float]:
    """Each test image's CIDEr-D at this beam size, from the run's test_captions.jsonl."""
    with tempfile.TemporaryDirectory() as folder:
        path = MlflowClient(tracking_uri).download_artifacts(run_id, CAPTIONS_FILE, folder)
        items = [json.loads(line) for line in Path(path).read_text().splitlines()]
    return {item["id"]: item["cider_d"][str(beam)] for item in items}


def _row(training: str, result: LaunchResult, wall: float,
         over_start: tuple[float, float, float, float] | None) -> dict[str, object]:
    """One run's line, with its `paired_gain` over the cross-entropy start if it has one."""
    metrics = result.metrics
    compared = ("", "", "")
    if over_start is not None:
        gain, low, high, above = over_start
        compared = (f"{gain:+.1%}", f"{low:+.1%} to {high:+.1%}", f"{above:.2f}")
    return {"training": training, "test CIDEr-D beam 3": round(metrics["test_cider_d_beam3"], 4),
            "vs cross-entropy": compared[0], "95% interval (paired bootstrap)": compared[1],
            "P(gain > 0)": compared[2],
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
    uri = f"sqlite:///{workdir}/mlflow.db"
    common = [f"data.path={args.data.resolve()}", f"tracking.uri={uri}",
              f"ray.storage_path={workdir}/runs"]
    cross_entropy, wall = _launch("flickr8k-xe", [*common, f"train.max_epochs={args.xe_epochs}"])
    start = item_scores(uri, cross_entropy.run_id)
    rows = [_row(f"cross-entropy ({args.xe_epochs} epochs)", cross_entropy, wall, None)]
    print(rows[-1], flush=True)
    more = [*common, f"train.init_from={cross_entropy.checkpoint}",
            f"train.max_epochs={args.scst_epochs}"]
    scst, wall = _launch("flickr8k-scst", [*more, "train.objective=scst",
                                           f"train.scst.baseline={args.scst_baseline}",
                                           f"optim.lr={args.scst_lr}"])
    scst_scores = item_scores(uri, scst.run_id)
    rows.append(_row(f"SCST, {args.scst_epochs} epochs from it (5 samples, "
                     f"{args.scst_baseline} baseline, lr {args.scst_lr:g})", scst, wall,
                     paired_gain(scst_scores, start)))
    print(rows[-1], flush=True)
    control, wall = _launch("flickr8k-xe-more", more)
    control_scores = item_scores(uri, control.run_id)
    rows.append(_row(f"cross-entropy, {args.scst_epochs} more epochs from it (lr 5e-4)",
                     control, wall, paired_gain(control_scores, start)))
    print(rows[-1], flush=True)
    gain, low, high, above = paired_gain(scst_scores, control_scores)
    notes = ("configs/flickr8k_efficientnet_cpu.yaml (frozen packaged EfficientNet-Lite0, "
             "LSTM 512 with soft attention; 640 train / 80 val / 80 test images, 5 references "
             "each). Test scores are pycocoevalcap's (PTB tokenizer; CIDEr-D document "
             "frequencies from the test references); SCST's reward is CIDEr-D with document "
             "frequencies from the training references. The goal is SCST >= +10% relative "
             "test CIDEr-D over cross-entropy. Intervals: a paired bootstrap over the test "
             "images of the relative gain in mean CIDEr-D at beam 3 (10,000 resamples). "
             f"SCST against the control: {gain:+.1%} ({low:+.1%} to {high:+.1%}, "
             f"P(gain > 0) = {above:.2f}).")
    print(append_section("Self-critical sequence training (Flickr8k subset)", rows, notes))


if __name__ == "__main__":
    main()

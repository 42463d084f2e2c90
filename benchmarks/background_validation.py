"""Full-split validation in the background against the in-epoch subset: the shipped
Multi30k word config launched twice, train.background_validation false then true, for a
few epochs; wall time, val BLEU by epoch and the share of the val split each scores.

    python -m benchmarks.background_validation [--shared ../shared/data] [--epochs 3]
"""

from __future__ import annotations

import argparse

from mlflow.tracking import MlflowClient

from benchmarks.launching import ROOT, TRACKING_URI, WORK, launch, prepare_once
from benchmarks.results import append_section
from orchestrator.config import load_config
from orchestrator.worker.tasks import TASKS

CONFIG = "configs/multi30k_de_en_cpu.yaml"


def subset_share(data: str) -> tuple[int, int]:
    """(sentences in the first eval.val_bleu_batches validation batches, in all of them)."""
    config = load_config(ROOT / CONFIG, [f"data.path={data}"])
    datamodule = TASKS[config.task].build_datamodule(config)
    datamodule.setup("validate")
    sizes = [len(batch["sources"]) for batch in datamodule.val_dataloader()]
    return sum(sizes[: config.eval.val_bleu_batches]), sum(sizes)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", default=str(ROOT.parent / "shared" / "data"))
    parser.add_argument("--epochs", type=int, default=3)
    args = parser.parse_args()
    raw = f"{args.shared}/multi30k"
    data = WORK / "multi30k"
    prepare_once(data, "translation", "-s", "de", "-t", "en", "--train", f"{raw}/train",
                 "--val", f"{raw}/val", "--test", f"{raw}/test_2016_flickr", "--min-freq", "2")
    in_subset, in_split = subset_share(str(data))
    client = MlflowClient(TRACKING_URI)
    rows = []
    for background in (False, True):
        run = launch(CONFIG, f"data.path={data}", f"train.max_epochs={args.epochs}",
                     f"train.background_validation={str(background).lower()}")
        val_bleu = [round(m.value, 2) for m in
                    sorted(client.get_metric_history(run.run_id, "val_bleu"),
                           key=lambda m: m.step)]
        rows.append({
            "validation": "whole split, background" if background else "subset, in the epoch",
            "val sentences scored": f"{in_split if background else in_subset} of {in_split}",
            "val BLEU by epoch (greedy)": ", ".join(map(str, val_bleu)),
            "test BLEU beam 5": round(run.metrics["test_bleu_beam5"], 2),
            "launch wall s": round(run.wall_s),
            "MLflow run": run.run_id[:8],
        })
    ratio = rows[1]["launch wall s"] / rows[0]["launch wall s"]
    covered = (" Here eval.val_bleu_batches already covers the whole split, so the rows "
               "differ only in whether training waits for the decoding." if in_subset == in_split
               else "")
    notes = (f"{CONFIG}, {args.epochs} epochs each, one after the other, nothing else "
             f"running. Launch wall time, background / in the epoch: {ratio:.3f} (goal <= "
             "1.05). The background scoring asks for no CPU: on this 2-core machine it "
             f"shares the cores with the worker's 2 threads while it runs.{covered}")
    print(append_section("Full-split validation in the background (CPU)", rows, notes))


if __name__ == "__main__":
    main()

"""Captioning benchmarks, written to benchmarks/RESULTS.md:

1. loader throughput (images/s, clips/s, with JPEG and PyAV mp4 decoding in the loader
   workers) against what the model consumes in training, with 1 and 2 loader workers;
2. the Flickr8k subset (800 images x 5 captions) and the MSR-VTT subset (16 clips) through
   `orchestrator launch`: BLEU-4 and CIDEr-D at beam 1 and 3, and wall time.

    python -m benchmarks.captioning [--shared ../shared/data] [--skip-launch] [key=value ...]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from mlflow.tracking import MlflowClient

from benchmarks.launching import ROOT, TRACKING_URI, WORK, launch, prepare_once
from benchmarks.results import append_section
from orchestrator.config import load_config
from orchestrator.datasets.batches import IGNORE_INDEX
from orchestrator.worker.tasks import TASKS

CONFIGS = {"flickr8k": "configs/flickr8k_attention_cpu.yaml",
           "msrvtt": "configs/msrvtt_s2vt_cpu.yaml",
           "msrvtt-frames": "configs/msrvtt_s2vt_cpu.yaml"}
MEDIA = {"flickr8k": "jpg images", "msrvtt": "mp4 clips",
         "msrvtt-frames": "8 jpg frames a clip, extracted at prepare time"}
LOADER_BATCHES = 24


def prepare(shared: Path) -> dict[str, Path]:
    flickr, msrvtt = shared / "flickr8k_subset", shared / "msrvtt_subset"
    prepare_once(WORK / "flickr8k", "captions", "--captions", str(flickr / "captions.txt"),
                 "--images", str(flickr / "images"), "--min-freq", "2")
    prepare_once(WORK / "msrvtt", "video", "--captions", str(msrvtt / "captions.csv"),
                 "--videos", str(msrvtt / "videos"), "--val-fraction", "0.125",
                 "--test-fraction", "0.125")
    # the same clips with their frames sampled and resized once, at prepare time
    prepare_once(WORK / "msrvtt-frames", "video", "--captions", str(msrvtt / "captions.csv"),
                 "--videos", str(msrvtt / "videos"), "--val-fraction", "0.125",
                 "--test-fraction", "0.125", "--frames", "8", "--frame-size", "64")
    return {name: WORK / name for name in CONFIGS}


def loader_rate(datamodule: Any) -> float:
    """Items per second out of the training loader, after its first batch (worker start)."""
    batches = iter(datamodule.train_dataloader())
    next(batches)
    started, items = time.perf_counter(), 0
    for _, batch in zip(range(LOADER_BATCHES), batches, strict=False):
        items += len(batch["ids"])
    return items / (time.perf_counter() - started)


def training_rate(module: Any, batch: dict[str, Any], steps: int = 10) -> float:
    """Items per second the model trains on, from one batch held in memory (after one
    warm-up step)."""
    optimizer = module.configure_optimizers()["optimizer"]  # the step a launch takes
    module.train()
    started = time.perf_counter()
    for step in range(steps + 1):
        if step == 1:
            started = time.perf_counter()
        logits = module.model(batch[module.inputs], batch["tgt_in"])
        loss = F.cross_entropy(logits.flatten(0, 1), batch["tgt_out"].flatten(),
                               ignore_index=IGNORE_INDEX)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return steps * len(batch["ids"]) / (time.perf_counter() - started)


def throughput_rows(data: dict[str, Path]) -> list[dict[str, object]]:
    # One thread: on cores other jobs keep busy, two OpenMP threads spin-wait on each other.
    torch.set_num_threads(1)
    rows = []
    for name, path in data.items():
        config = load_config(ROOT / CONFIGS[name], [f"data.path={path}"])
        task = TASKS[config.task]
        datamodule = task.build_datamodule(config)
        module = task.build_module(config, datamodule)
        batch = next(iter(datamodule.train_dataloader()))
        consumed = training_rate(module, batch)
        for workers in (1, 2):
            datamodule.num_workers = workers
            produced = loader_rate(datamodule)
            rows.append({
                "data": f"{name} ({MEDIA[name]}, {config.data.image_size}px)",
                "loader workers": workers, "loader items/s": round(produced, 1),
                "training items/s": round(consumed, 1),
                "loader / training": round(produced / consumed, 2),
            })
    return rows


def launch_rows(data: dict[str, Path], overrides: list[str]) -> list[dict[str, object]]:
    client = MlflowClient(TRACKING_URI)
    rows = []
    for name, path in data.items():
        run = launch(CONFIGS[name], f"data.path={path}", *overrides)
        m = run.metrics
        val = [round(x.value, 2) for x in client.get_metric_history(run.run_id, "val_cider_d")]
        rows.append({
            "data": name, "BLEU-4 beam 1": m.get("test_bleu_4_beam1", float("nan")),
            "BLEU-4 beam 3": m.get("test_bleu_4_beam3", float("nan")),
            "CIDEr-D beam 1": m.get("test_cider_d_beam1", float("nan")),
            "CIDEr-D beam 3": m.get("test_cider_d_beam3", float("nan")),
            "METEOR beam 3": m.get("test_meteor_beam3", float("nan")),
            "val CIDEr-D by epoch (greedy)": ", ".join(map(str, val)),
            "launch wall s": round(run.wall_s), "MLflow run": run.run_id[:8],
        })
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--skip-launch", action="store_true")
    parser.add_argument("--machine-note", default="Nothing else ran on the machine.",
                        help="what else used the cores while this ran")
    parser.add_argument("overrides", nargs="*")
    args = parser.parse_args()
    data = prepare(args.shared.resolve())
    shared_note = args.machine_note
    rows = throughput_rows(data)
    print(append_section("Captioning: loader throughput vs training consumption (CPU)", rows,
                         "Loader: items/s out of the training DataLoader (shard reading, JPEG "
                         "decoding with PIL or mp4 decoding with PyAV and uniform sampling of "
                         "8 frames, resizing, caption tokenising) after its first batch. "
                         "Training: items/s of forward+backward+Adam on one batch in memory "
                         "(1 thread), the configs' models (configs/flickr8k_attention_cpu.yaml, "
                         "configs/msrvtt_s2vt_cpu.yaml). A ratio >= 1 means decoding keeps up. "
                         + shared_note))
    if not args.skip_launch:
        rows = launch_rows(data, args.overrides)
        print(append_section(
            "Captioning end to end: Flickr8k subset and MSR-VTT subset (CPU)", rows,
            "Through `orchestrator launch` with configs/flickr8k_attention_cpu.yaml (640 "
            "train / 80 val / 80 test images, split by image, 5 references each) and "
            "configs/msrvtt_s2vt_cpu.yaml (12 / 2 / 2 clips, one reference each)"
            + (f" with {' '.join(args.overrides)}" if args.overrides else "")
            + "; scores are pycocoevalcap's (PTB tokenizer, CIDEr-D document frequencies from "
            "the test split's references) on the best validation epoch's weights. These sets "
            "are tiny: the point is real JPEGs and mp4 clips flowing end to end, not the "
            "scores. " + shared_note))


if __name__ == "__main__":
    main()

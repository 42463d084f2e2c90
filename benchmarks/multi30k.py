"""Multi30k de->en through `orchestrator launch` on CPU: test2016 cased, detokenised BLEU
at beam 1 and 5 (sacrebleu), wall time; then decode time of test2016 (1000 sentences),
batched beam 5 against batched greedy, from the best checkpoint.

    python -m benchmarks.multi30k [--shared ../shared/data] [--config FILE] [key=value ...]
    python -m benchmarks.multi30k --decode-only CHECKPOINT   # decode timing alone
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
from mlflow.tracking import MlflowClient

from benchmarks.launching import ROOT, TRACKING_URI, WORK, launch, prepare_once
from benchmarks.results import append_section
from orchestrator.worker.tasks import load_task_module

# Each shipped Multi30k CPU config, with the dataset folder under benchmarks/work and the
# `data prepare translation` arguments its header gives.
CONFIG_DATA = {
    "configs/multi30k_de_en_cpu.yaml": ("multi30k", ["--min-freq", "2"]),
    "configs/multi30k_de_en_bpe_cpu.yaml": (
        "multi30k-bpe", ["--subword", "bpe", "--subword-vocab-size", "6000", "--subword-joint"]),
}

def decode_times(checkpoint: Path, sources: list[str]) -> dict[int, float]:
    torch.set_num_threads(2)
    module = load_task_module(checkpoint, ["translation"])
    times = {}
    for beam in (1, 5):
        started = time.perf_counter()
        for start in range(0, len(sources), 64):
            module.translate(sources[start : start + 64], beam)
        times[beam] = time.perf_counter() - started
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--config", choices=CONFIG_DATA, default=next(iter(CONFIG_DATA)))
    parser.add_argument("--decode-only", type=Path, metavar="CHECKPOINT",
                        help="only time test2016 decoding with this checkpoint (no training)")
    parser.add_argument("overrides", nargs="*")
    args = parser.parse_args()
    raw = args.shared.resolve() / "multi30k"
    if args.decode_only:
        decode_section(args.decode_only, (raw / "test_2016_flickr.de").read_text().splitlines())
        return
    folder, prepare_arguments = CONFIG_DATA[args.config]
    data = WORK / folder
    prepare_once(data, "translation", "-s", "de", "-t", "en", "--train", str(raw / "train"),
                 "--val", str(raw / "val"), "--test", str(raw / "test_2016_flickr"),
                 *prepare_arguments)
    run = launch(args.config, f"data.path={data}", *args.overrides)
    client = MlflowClient(TRACKING_URI)
    checkpoint = Path(client.download_artifacts(run.run_id, "checkpoint/checkpoint.ckpt",
                                                str(WORK)))
    sources = (raw / "test_2016_flickr.de").read_text().splitlines()
    times = decode_times(checkpoint, sources)
    val_bleu = [round(m.value, 1) for m in client.get_metric_history(run.run_id, "val_bleu")]
    rows = [{
        "test BLEU beam 1": run.metrics["test_bleu_beam1"],
        "test BLEU beam 5": run.metrics["test_bleu_beam5"],
        "val BLEU by epoch (greedy, subset)": ", ".join(map(str, val_bleu)),
        "launch wall s": round(run.wall_s),
        "decode test2016 greedy s": round(times[1], 1),
        "decode test2016 beam 5 s": round(times[5], 1),
        "beam5 / greedy": round(times[5] / times[1], 2),
        "MLflow run": run.run_id[:8],
    }]
    notes = (args.config
             + (f" with {' '.join(args.overrides)}" if args.overrides else "")
             + "; BLEU is sacrebleu corpus BLEU (13a, cased) of detokenised output against "
             "the raw references, on the best validation epoch's weights. Anchors: "
             "bentrevett attention bi-GRU 28.3 greedy (tokenised, lower-cased); a plain "
             "PyTorch script on this machine 39.6 greedy / 40.3 beam 5 in 28 min. Goal: "
             "beam 5 >= 40.5, greedy >= 39.5 in <= 30 min of training; decode beam5/greedy <= 3.")
    print(append_section("Multi30k de->en translation (CPU)", rows, notes))


def decode_section(checkpoint: Path, sources: list[str]) -> None:
    times = decode_times(checkpoint, sources)
    rows = [{"sentences": len(sources), "batch": 64,
             "greedy s": round(times[1], 2), "beam 5 s": round(times[5], 2),
             "beam5 / greedy": round(times[5] / times[1], 2), "checkpoint": checkpoint.name}]
    notes = ("Batched greedy and batched beam 5 (GNMT penalty, alpha 0.6) over test2016 with "
             "a trained configs/multi30k_de_en_cpu.yaml checkpoint, 2 threads. Goal: beam 5 "
             "<= 3x greedy.")
    print(append_section("Multi30k decode time: beam 5 vs greedy (CPU)", rows, notes))


if __name__ == "__main__":
    main()

"""Ensembles against their members: each checkpoint alone, then all of them as one
ensemble (`orchestrator eval --ensemble`), on the test split of the data the first
checkpoint carries in its config, at the given beam sizes.

    python -m benchmarks.ensembles A.ckpt B.ckpt [C.ckpt] [--beams 1 5] [--name NAME]
                                   [--set eval.alpha=1.0 --set data.path=DIR ...]
"""

from __future__ import annotations

import argparse
from pathlib import Path

from benchmarks.results import append_section
from orchestrator.evaluate import evaluate
from orchestrator.run_files import CONFIG_KEY, read_checkpoint
from orchestrator.task_metrics import TASK_METRICS


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoints", nargs="+", type=Path)
    parser.add_argument("--beams", nargs="+", type=int, default=[1, 5])
    parser.add_argument("--name", default="", help="what the checkpoints are, for the title")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="an eval override for every pass (eval.alpha=1.0, data.path=DIR)")
    args = parser.parse_args()
    task = read_checkpoint(args.checkpoints[0])[CONFIG_KEY]["task"]
    metric = TASK_METRICS[task].beam_metric  # a template: test_bleu_beam{k}
    beams = f"eval.beam_sizes=[{','.join(map(str, args.beams))}]"
    rows = []
    for members in [[path] for path in args.checkpoints] + [args.checkpoints]:
        metrics = evaluate(str(members[0]), [beams, *args.set],
                           ensemble=[str(m) for m in members[1:]])
        name = " + ".join(path.parent.name for path in members)
        rows.append({"model": name if len(members) > 1 else f"{name} alone",
                     **{f"beam {k}": round(metrics.metrics[metric.format(k=k)], 2)
                        for k in args.beams}})
        print(rows[-1], flush=True)
    best_single = {k: max(row[f"beam {k}"] for row in rows[:-1]) for k in args.beams}
    gains = ", ".join(f"beam {k} {rows[-1][f'beam {k}'] - best_single[k]:+.2f}"
                      for k in args.beams)
    notes = (f"The ensemble averages the members' next-token probabilities inside one search "
             f"(`orchestrator eval FIRST --ensemble OTHERS`). Against the best member: {gains}."
             + (f" Settings: {' '.join(args.set)}." if args.set else ""))
    print(append_section(f"Ensemble decoding{': ' + args.name if args.name else ''}", rows,
                         notes))


if __name__ == "__main__":
    main()

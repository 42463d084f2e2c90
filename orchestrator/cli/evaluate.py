"""`orchestrator eval CHECKPOINT`: score a trained checkpoint again, without training."""

from __future__ import annotations

import argparse
from typing import Any

from orchestrator.cli.arguments import split_items


def register(commands: Any, common: argparse.ArgumentParser) -> None:
    evaluate = commands.add_parser(
        "eval", parents=[common], help="score a checkpoint again (new beam sizes, another split)",
        description="Test (or validate) a checkpoint with the experiment config it carries; "
        "overrides change it, e.g. eval.beam_sizes=[1,5,10] or data.path=OTHER_DATASET.",
    )
    evaluate.add_argument(
        "checkpoint", help="a .ckpt file, a Ray checkpoint folder, or a registered model: "
        "models:/NAME@ALIAS or models:/NAME/VERSION ($MLFLOW_TRACKING_URI, else ./mlflow.db)")
    evaluate.add_argument(
        "items", nargs="*", metavar="CONFIG|key=value",
        help="overrides of the config the checkpoint carries; a config file replaces it "
        "(for checkpoints that carry none: MLflow keeps each run's config.yaml)",
    )
    evaluate.add_argument("--split", choices=["test", "val"], default="test")
    evaluate.add_argument("--ensemble", nargs="+", default=[], metavar="CHECKPOINT",
                          help="more checkpoints of the same task and vocabulary, decoded "
                          "with the first as one ensemble (their probabilities averaged)")
    evaluate.add_argument("--log", action="store_true",
                          help="also log to a new MLflow run (the config's tracking store)")
    evaluate.set_defaults(handler=_evaluate)


def _evaluate(args: argparse.Namespace) -> int:
    from orchestrator.evaluate import evaluate, metrics_table

    path, overrides = split_items(args.items)
    result = evaluate(args.checkpoint, overrides, args.split, args.log, path,
                      ensemble=args.ensemble)
    print(metrics_table(result.metrics))
    if result.run_id:
        print(f"MLflow run: {result.run_id}")
    return 0

"""`orchestrator launch`: one training run, here or on a cluster."""

from __future__ import annotations

import argparse
import logging
import os
from typing import Any

from orchestrator.cli.arguments import split_items
from orchestrator.errors import OrchestratorError


def register(commands: Any, common: argparse.ArgumentParser) -> None:
    launch = commands.add_parser(
        "launch", parents=[common], help="one training run",
        description="Train, validate and test one model. With no CONFIG, the quickstart: a "
        "character LSTM on generated sample text, 2 Ray workers, a local MLflow store.",
    )
    launch.add_argument(
        "items", nargs="*", metavar="CONFIG|key=value",
        help="a YAML config file and/or dotted overrides such as model.cell=gru",
    )
    launch.add_argument(
        "--address",
        help="Ray cluster: auto (a `ray start` cluster), HOST:PORT, ray://HOST:10001 (client), "
        "or http://HOST:8265 (submit as a Ray job); default: a local instance",
    )
    launch.add_argument(
        "--resume", metavar="RUN",
        help="continue an interrupted run (an MLflow run id or name, or `last`) from its last "
        "checkpoint, in the same MLflow run; overrides may change only how long and where it "
        "trains (README: Interrupted runs)",
    )
    launch.set_defaults(handler=_launch)


def _launch(args: argparse.Namespace) -> int:
    from orchestrator.config import load_config

    path, overrides = split_items(args.items)
    remote = args.address and args.address.startswith(("http://", "https://", "ray://"))
    if remote and args.resume:
        raise OrchestratorError(f"--resume with --address {args.address} is not supported: "
                                "resume on the cluster, or join it with --address HOST:PORT")
    if remote:
        # A Ray Jobs API or client address: the run goes to the cluster as a job.
        from orchestrator.remote import launch_remote

        return launch_remote(load_config(path, overrides), args.address)
    if args.address:
        overrides.append(f"ray.address={args.address}")

    from orchestrator.launch import launch, summary
    from orchestrator.resume import prepare_resume

    _quiet_driver()  # after MLflow's import, which sets its logger's level
    if args.resume:
        resume = prepare_resume(args.resume, path, overrides)
        print(summary(launch(resume.config, resume)))
    else:
        print(summary(launch(load_config(path, overrides))))
    return 0


def _quiet_driver() -> None:
    """The console shows the epochs and the summary, not MLflow's store set-up messages
    or a progress bar for downloading one small artifact."""
    logging.getLogger("mlflow").setLevel(logging.WARNING)
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")

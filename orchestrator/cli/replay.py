"""`orchestrator replay FOLDER`: put what a tracking outage kept from MLflow into its run.

The launch driver replays a run's `undelivered/` folder itself when the server answers
within its wait; this is for the runs whose server came back later.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from orchestrator.cli.arguments import split_items


def register(commands: Any, common: argparse.ArgumentParser) -> None:
    replay = commands.add_parser(
        "replay", parents=[common],
        help="log the metrics and artifacts a tracking outage kept into their MLflow run",
        description="Send a run's undelivered/ folder (under ray.storage_path/RUN_NAME) to the "
        "tracking store of the config, e.g. tracking.uri=http://HOST:PORT.",
    )
    replay.add_argument("folder", type=Path, help="the run's undelivered/ folder")
    replay.add_argument("items", nargs="*", metavar="CONFIG|key=value",
                        help="where the run is tracked (tracking.uri=...)")
    replay.set_defaults(handler=_replay)


def _replay(args: argparse.Namespace) -> int:
    from mlflow.tracking import MlflowClient

    from orchestrator.config import load_config
    from orchestrator.tracking import check_reachable, resolve_tracking_uri
    from orchestrator.undelivered import check_folder, replay

    check_folder(args.folder)
    path, overrides = split_items(args.items)
    uri = resolve_tracking_uri(load_config(path, overrides).tracking)
    check_reachable(uri)
    print(replay(MlflowClient(uri), args.folder))
    return 0

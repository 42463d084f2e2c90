"""`orchestrator ui`: the MLflow UI on the configured tracking store."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from orchestrator.cli.arguments import positive_int, split_items

# MLflow 3 opens an experiment in its GenAI (traces) view unless the URL asks for this one
MODEL_TRAINING_VIEW = "?workflowType=machine_learning"


def register(commands: Any, common: argparse.ArgumentParser) -> None:
    ui = commands.add_parser(
        "ui", parents=[common], help="open the MLflow UI on the configured store"
    )
    ui.add_argument("items", nargs="*", metavar="CONFIG|key=value")
    ui.add_argument("--port", type=positive_int, default=5000)
    ui.add_argument("--host", default="127.0.0.1")
    ui.set_defaults(handler=_ui)


def _ui(args: argparse.Namespace) -> int:
    from mlflow.tracking import MlflowClient

    from orchestrator.config import load_config
    from orchestrator.resume import mark_stale_runs, resume_command
    from orchestrator.tracking import artifact_root, check_reachable, resolve_tracking_uri

    path, overrides = split_items(args.items)
    config = load_config(path, overrides)
    uri = resolve_tracking_uri(config.tracking)
    # a stale $MLFLOW_TRACKING_URI would otherwise cost minutes of MLflow's retries
    check_reachable(uri)
    # launches whose driver was killed would show as running forever
    for run_id in mark_stale_runs(MlflowClient(uri), config.tracking.experiment):
        print(f"run {run_id}: its driver is gone; marked KILLED (continue it with "
              f"`{resume_command(run_id, uri)}`)")
    if uri.startswith(("http://", "https://")):
        # a tracking server serves its own UI; a second one could not open its store
        page = runs_page(uri.rstrip("/"), MlflowClient(uri), config.tracking.experiment)
        print(f"MLflow UI of the tracking server: {page}")
        return 0
    command = [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", uri,
               "--host", args.host, "--port", str(args.port)]
    if artifact_root(uri):
        command += ["--default-artifact-root", artifact_root(uri)]
    page = runs_page(f"http://{args.host}:{args.port}", MlflowClient(uri),
                     config.tracking.experiment)
    print(f"MLflow UI for {uri}: {page} (Ctrl-C stops it)", flush=True)
    # MLflow's GenAI job runner (a dozen processes) does nothing for training runs
    os.environ.setdefault("MLFLOW_SERVER_ENABLE_JOB_EXECUTION", "false")
    os.execv(sys.executable, command)  # become the UI, so signals reach it directly
    return 0


def runs_page(base: str, client: Any, experiment: str) -> str:
    """The experiment's runs table in MLflow's model-training view (MLflow 3 opens its
    GenAI traces view otherwise); the experiment list when the experiment has no runs yet."""
    found = client.get_experiment_by_name(experiment)
    if found is None:
        return f"{base}/"
    return f"{base}/#/experiments/{found.experiment_id}/runs{MODEL_TRAINING_VIEW}"

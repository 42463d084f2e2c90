"""`orchestrator sweep` and `orchestrator report`: a Ray Tune sweep and its report."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from orchestrator.errors import OrchestratorError


def register(commands: Any, common: argparse.ArgumentParser) -> None:
    sweep = commands.add_parser(
        "sweep", parents=[common], help="a Ray Tune sweep with a report",
        description="Train one model per point of the sweep's search space (scheduler: ASHA "
        "by default), decode each at every evaluation setting, track a parent MLflow run "
        "with a child per trial, and write report.html/report.md into the sweep folder.",
    )
    sweep.add_argument("sweep_file", nargs="?", metavar="SWEEP.yaml")
    sweep.add_argument("--resume", metavar="DIR",
                       help="continue an interrupted sweep from its folder")
    sweep.add_argument("--address", help="Ray cluster address (default: a local instance)")
    sweep.set_defaults(handler=_sweep)

    report = commands.add_parser(
        "report", parents=[common], help="write a sweep's HTML and Markdown report",
    )
    report.add_argument("sweep_dir", metavar="SWEEP_DIR")
    report.set_defaults(handler=_report)


def _sweep(args: argparse.Namespace) -> int:
    if bool(args.sweep_file) == bool(args.resume):
        raise OrchestratorError("give a sweep file, or --resume DIR to continue a sweep")
    from orchestrator.sweep.driver import sweep

    outcome = sweep(args.sweep_file, resume=args.resume, address=args.address)
    if not outcome.finished:
        print(f"sweep interrupted; continue it with: orchestrator sweep --resume "
              f"{outcome.folder}", file=sys.stderr)
        return 130
    print(f"sweep finished: {outcome.folder}\nreport: {outcome.report_html}\n"
          f"MLflow parent run: {outcome.parent_run_id}")
    if outcome.failed_trials:
        print(f"error: {outcome.failed_trials} trials failed; the report's \"Failed trials\" "
              "table gives each one's cause", file=sys.stderr)
        return 1
    return 0


def _report(args: argparse.Namespace) -> int:
    from orchestrator.tuning.report import write_report

    written = write_report(Path(args.sweep_dir).resolve())
    print(f"report: {written.html}\nsummary: {written.markdown}")
    return 0

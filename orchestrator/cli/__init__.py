"""The `orchestrator` command line: one module per door, each registering its commands.

This is the one place errors become messages: errors a user can fix print as one line
(`error: ...`, exit 2), with any password in a URL hidden; `--debug` shows the traceback
instead. Door modules import their
heavy dependencies inside their handlers, so `orchestrator --help` stays fast.
"""

from __future__ import annotations

import argparse
import signal
import sys
import traceback
from collections.abc import Sequence

from orchestrator.cli import data, evaluate, infer, k8s, launch, replay, sweep, ui
from orchestrator.cli.arguments import OneLineParser, parse_command_line
from orchestrator.errors import OrchestratorError, hide_passwords

# Each registers its subcommands with `register(commands, common)`; the order is --help's.
DOORS = (launch, sweep, evaluate, ui, infer, k8s, data, replay)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parse_command_line(parser, argv)
    if not hasattr(args, "handler"):
        parser.print_help()
        return 2
    signal.signal(signal.SIGTERM, _interrupt)  # `kill`, a pod's eviction: as Ctrl-C
    try:
        return args.handler(args) or 0
    except KeyboardInterrupt as exc:
        print("interrupted" + (f"; {exc}" if str(exc) else ""), file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - the one place errors become messages
        if args.debug:
            traceback.print_exc()
        print(f"error: {_one_line(exc)}", file=sys.stderr)
        return 2 if _is_user_error(exc) else 1


def _interrupt(signum: int, frame: object) -> None:
    """SIGTERM stops a command the way Ctrl-C does: runs end KILLED and can be resumed."""
    raise KeyboardInterrupt


def build_parser() -> argparse.ArgumentParser:
    common = OneLineParser(add_help=False)
    common.add_argument("--debug", action="store_true", help="show tracebacks")
    parser = OneLineParser(
        prog="orchestrator", parents=[common],
        description="Train, sweep and compare recurrent sequence models on Ray and MLflow.",
    )
    commands = parser.add_subparsers(title="commands")
    for door in DOORS:
        door.register(commands, common)
    return parser


def _is_user_error(exc: Exception) -> bool:
    from orchestrator.datasets.manifest import DatasetError
    from orchestrator.tuning.sweep_config import SweepError

    return isinstance(exc, OrchestratorError | DatasetError | SweepError)


def _one_line(exc: Exception) -> str:
    text = str(exc).strip() or type(exc).__name__
    if not _is_user_error(exc):
        text = f"{type(exc).__name__}: {text} (rerun with --debug for the traceback)"
    return hide_passwords(" ".join(text.split()))

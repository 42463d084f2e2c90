"""Argument handling every door shares: CONFIG and key=value items, input files."""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

from orchestrator.errors import OrchestratorError


def split_items(items: list[str]) -> tuple[str | None, list[str]]:
    """`[CONFIG] [key=value ...]` -> the config file (or None) and the overrides."""
    overrides = [item for item in items if "=" in item]
    paths = [item for item in items if "=" not in item]
    for item in paths:
        if not item.endswith((".yaml", ".yml")) and not Path(item).is_file():
            raise OrchestratorError(
                f"{item!r} is neither a config file nor a key=value override "
                "(e.g. model.cell=gru)"
            )
    if len(paths) > 1:
        raise OrchestratorError(
            f"expected at most one config file, got {', '.join(paths)}; "
            "overrides look like key=value"
        )
    return (paths[0] if paths else None), overrides


# The positional lists that take more of the same after an option: [CONFIG] key=value
# items, and the input files of `caption`, `label-frames` and `k8s validate`.
ITEM_LISTS = ("items", "overrides", "files")


def parse_command_line(parser: argparse.ArgumentParser,
                       argv: Sequence[str] | None) -> argparse.Namespace:
    """argparse, except that a command's list may go on after options:
    `eval CKPT --split val key=value`, `k8s validate a.yaml --crds DIR b.yaml`.

    argparse fills a positional list once, before the first option, so what follows an
    option comes back unrecognised; it belongs at the end of the command's list, converted
    like what argparse put there (a file list holds Paths). Anything else left over (a
    misspelled option, a command without such a list) is refused.
    """
    args, extras = parser.parse_known_args(argv)
    if not extras:
        return args
    lists = [getattr(args, name) for name in ITEM_LISTS
             if isinstance(getattr(args, name, None), list)]
    if not lists or any(extra.startswith("-") for extra in extras):
        parser.error(f"unrecognized arguments: {' '.join(extras)}")
    kind = type(lists[0][0]) if lists[0] else str
    lists[0].extend(kind(extra) for extra in extras)
    return args


def read_text(path: Path) -> str:
    """A user's input file as text; a missing, non-UTF-8 or empty file is named in one line."""
    if not path.is_file():
        raise OrchestratorError(f"input file {path} does not exist")
    return _decoded(path.read_bytes(), f"input file {path}")


def read_stdin() -> str:
    """Standard input as text: binary or non-UTF-8 input is one line, not a traceback."""
    if not hasattr(sys.stdin, "buffer"):  # replaced by a text stream (an embedding program)
        return _decoded(sys.stdin.read().encode("utf-8"), "standard input")
    return _decoded(sys.stdin.buffer.read(), "standard input")


def _decoded(data: bytes, what: str) -> str:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise OrchestratorError(
            f"{what} is not UTF-8 text (line {line}, byte {exc.start}); convert it, "
            "e.g. `iconv -f latin1 -t utf-8`"
        ) from None
    if not text.strip():
        raise OrchestratorError(f"{what} is empty")
    return text


class OneLineParser(argparse.ArgumentParser):
    """argparse, with its errors as one line like every other error (usage under --help)."""

    def error(self, message: str) -> NoReturn:
        print(f"error: {self.prog}: {message} (see `{self.prog} --help`)", file=sys.stderr)
        sys.exit(2)


def positive_int(text: str) -> int:
    """An argparse type: a count of at least 1."""
    value = _number(text, int, "a whole number")
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text} is not a count of at least 1")
    return value


def positive_float(text: str) -> float:
    """An argparse type: a finite number above 0 (a temperature, a size)."""
    value = _number(text, float, "a number")
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"{text} is not a finite number above 0")
    return value


def fraction(text: str) -> float:
    """An argparse type: a share of the data, in [0, 1) (0: no such split)."""
    value = _number(text, float, "a number")
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"{text} is not a fraction in [0, 1)")
    return value


def _number(text: str, kind: type, what: str) -> float:
    try:
        return kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not {what}") from None

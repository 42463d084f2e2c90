"""Argument handling every door shares: CONFIG and key=value items, input files."""

from __future__ import annotations

from pathlib import Path

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


def read_text(path: Path) -> str:
    """A user's input file as text; a missing file is named in one line."""
    if not path.is_file():
        raise OrchestratorError(f"input file {path} does not exist")
    return path.read_text(encoding="utf-8")

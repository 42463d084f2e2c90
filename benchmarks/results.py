"""Append a dated, machine-stamped section to benchmarks/RESULTS.md."""

from __future__ import annotations

import os
import platform
import time
from pathlib import Path

import torch

RESULTS = Path(__file__).with_name("RESULTS.md")


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return (f"{platform.node()}: {os.cpu_count()} cores {cpu}, {device}, "
            f"python {platform.python_version()}, torch {torch.__version__}")


def append_section(title: str, rows: list[dict[str, object]], notes: str = "") -> str:
    """Write one Markdown table under a heading with the date and machine; return it."""
    columns = list(rows[0])
    lines = [
        f"## {title}",
        "",
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} on {machine()}",
        "",
        "| " + " | ".join(columns) + " |",
        "| " + " | ".join("---" for _ in columns) + " |",
    ]
    lines += ["| " + " | ".join(_cell(row[c]) for c in columns) + " |" for row in rows]
    if notes:
        lines += ["", notes]
    section = "\n".join(lines) + "\n\n"
    if not RESULTS.exists():
        RESULTS.write_text("# Benchmark results\n\nNewest last. Written by the scripts in "
                           "this folder; each section says when and where it ran.\n\n")
    with RESULTS.open("a") as handle:
        handle.write(section)
    return section


def _cell(value: object) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)

"""Append a dated, machine-stamped section to benchmarks/RESULTS.md."""

from __future__ import annotations

import os
import platform
import re
import time
from pathlib import Path

import torch

RESULTS = Path(__file__).with_name("RESULTS.md")


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return (f"{platform.node()}: {os.cpu_count()} cores {cpu}, {device}, "
            f"python {platform.python_version()}, torch {torch.__version__}")


INTRO = ("# Benchmark results\n\nNewest last. Written by the scripts in this folder; each "
         "section says when and where it ran.\n\n")
INDEX_START, INDEX_END = "<!-- index -->", "<!-- /index -->"


def append_section(
    title: str, rows: list[dict[str, object]], notes: str = "", results: Path = RESULTS
) -> str:
    """Write one Markdown table under a heading with the date and machine, and bring the
    index of latest sections up to date; return the section."""
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
    text = results.read_text() if results.exists() else INTRO
    partial = results.with_name(f".{results.name}.partial")
    partial.write_text(with_index(text + section))
    partial.replace(results)  # never a half-written results file
    return section


def with_index(text: str) -> str:
    """`text` with its index rebuilt: each benchmark once, linked to its newest section.
    The file is appended to for years, so the newest result of a benchmark sits hundreds of
    lines below its first; the index sits right under the introduction."""
    if INDEX_START in text:
        intro, _, rest = text.partition(INDEX_START)
        body = rest.partition(INDEX_END)[2].lstrip("\n")
    else:  # the introduction is what comes before the first section
        first = text.find("\n## ")
        intro, body = (text, "") if first < 0 else (text[: first + 1], text[first + 1 :])
    newest: dict[str, tuple[str, str]] = {}
    seen: dict[str, int] = {}
    for match in re.finditer(r"^## (.+)\n\n(\d{4}-\d\d-\d\d)?", body, flags=re.MULTILINE):
        title, date = match.group(1), match.group(2) or "undated"
        slug = re.sub(r"[^\w\- ]", "", title.lower()).replace(" ", "-")
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        newest.pop(title, None)  # re-inserted, so the index runs oldest to newest
        newest[title] = (f"{slug}-{count}" if count else slug, date)
    entries = [f"- [{title}](#{anchor}) ({date})" for title, (anchor, date) in newest.items()]
    index = "\n".join([INDEX_START, "Newest section of each benchmark:", "", *entries, INDEX_END])
    return f"{intro.rstrip()}\n\n{index}\n\n{body}"


def _cell(value: object) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)

"""The translations and captions pages: one self-contained HTML file per run, opened in the
MLflow artifact viewer, with every test item's input, its output at each beam size (scored
alone), and its references.

Every text here comes from data or a model, so every one is HTML-escaped: a `<script>` in
a source sentence shows as text and never runs. Images are inline base64 data, so the page
needs nothing beside it. No script runs on the page: the viewer may sandbox it.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

PAGE_ROWS = 500  # test items on a page: enough to read through, small enough to open

STYLE = """
body { font-family: system-ui, sans-serif; margin: 16px; color: #222; }
h1 { font-size: 20px; margin: 0 0 6px; }
p.note { color: #555; margin: 4px 0; max-width: 1100px; }
table { border-collapse: collapse; margin-top: 12px; width: 100%; }
th, td { border: 1px solid #ddd; padding: 4px 6px; vertical-align: top; text-align: left; }
th { background: #f3f3f3; position: sticky; top: 0; }
td.n { color: #888; text-align: right; }
td.out { min-width: 140px; }
span.score { display: inline-block; margin-left: 6px; padding: 0 4px; border-radius: 3px;
             font-size: 12px; font-variant-numeric: tabular-nums; }
td.ref { color: #333; background: #fafafa; }
ul { margin: 0; padding-left: 16px; }
img { display: block; height: 112px; image-rendering: pixelated; }
table.summary { width: auto; margin-top: 8px; }
"""


@dataclass(frozen=True)
class PageRow:
    """One test item: its input (text, or an image's bytes), the output and its score at
    each beam size, and the references."""

    source: str | bytes  # text, or a JPEG/PNG thumbnail
    outputs: dict[int, str]  # beam size -> output
    scores: dict[int, float]  # beam size -> that output's score alone
    references: list[str]
    label: str = ""  # an id shown with the row number (captioning's item id)


@dataclass(frozen=True)
class PageHeader:
    """What the page is, the corpus scores it sits beside, and how its rows are scored."""

    title: str
    total: int  # test items in the split; the page may show fewer (PAGE_ROWS)
    score_name: str  # the per-row score, e.g. "sentence BLEU"
    corpus: dict[int, dict[str, float]]  # beam size -> the logged test metrics
    notes: list[str]  # one paragraph each (plain text, escaped here)
    score_scale: float  # the score that colours a cell fully green (100 for BLEU)


def results_page(header: PageHeader, rows: Sequence[PageRow], source_name: str) -> str:
    """The whole page: a heading, the corpus scores per beam size, then one table row per
    test item (the first PAGE_ROWS)."""
    beams = sorted(header.corpus) or sorted({b for row in rows for b in row.outputs})
    shown = list(rows[:PAGE_ROWS])
    count = (f"all {len(shown)} test items" if len(shown) >= header.total
             else f"the first {len(shown)} of {header.total} test items")
    parts = [
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{escape(header.title)}</title><style>{STYLE}</style></head><body>",
        f"<h1>{escape(header.title)}</h1>",
        f'<p class="note">Showing {count}. Each output carries its {escape(header.score_name)}'
        " (scored alone).</p>",
        *(f'<p class="note">{escape(note)}</p>' for note in header.notes),
        _summary_table(header.corpus),
        "<table><thead><tr><th>#</th>", f"<th>{escape(source_name)}</th>",
        *(f"<th>beam {beam}</th>" for beam in beams),
        "<th>reference(s)</th></tr></thead><tbody>",
        *(_row(number, row, beams, header.score_scale) for number, row in enumerate(shown)),
        "</tbody></table></body></html>",
    ]
    return "\n".join(parts) + "\n"


def _summary_table(corpus: dict[int, dict[str, float]]) -> str:
    """The logged test metrics, one row per beam size."""
    if not corpus:
        return ""
    names = list(corpus[min(corpus)])
    head = "".join(f"<th>{escape(name)}</th>" for name in names)
    body = "".join(
        f"<tr><td>beam {beam}</td>"
        + "".join(f"<td>{corpus[beam].get(name, float('nan')):.4g}</td>" for name in names)
        + "</tr>" for beam in sorted(corpus))
    return f'<table class="summary"><tr><th>test</th>{head}</tr>{body}</table>'


def _row(number: int, row: PageRow, beams: list[int], scale: float) -> str:
    label = f"<br><small>{escape(row.label)}</small>" if row.label else ""
    cells = [f'<td class="n">{number + 1}{label}</td>', f"<td>{_source_cell(row.source)}</td>"]
    for beam in beams:
        output = row.outputs.get(beam)
        if output is None:
            cells.append("<td></td>")
            continue
        score = row.scores.get(beam)
        badge = (f'<span class="score" style="background:{_shade(score / scale)}">'
                 f"{score:.3g}</span>" if score is not None else "")
        cells.append(f'<td class="out">{escape(output) or "<i>(empty)</i>"}{badge}</td>')
    refs = "".join(f"<li>{escape(ref)}</li>" for ref in row.references)
    cells.append(f'<td class="ref"><ul>{refs}</ul></td>')
    return "<tr>" + "".join(cells) + "</tr>"


def _source_cell(source: str | bytes) -> str:
    if isinstance(source, bytes):
        kind = "png" if source.startswith(b"\x89PNG") else "jpeg"
        data = base64.b64encode(source).decode("ascii")
        return f'<img alt="test input" src="data:image/{kind};base64,{data}">'
    return escape(source)


def _shade(fraction: float) -> str:
    """Red (0) through yellow to green (1): a score badge's colour, for scanning by eye."""
    hue = 120 * min(max(fraction, 0.0), 1.0)
    return f"hsl({hue:.0f}, 70%, 82%)"

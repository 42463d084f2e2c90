"""Test metrics side by side for every beam size: one table and one chart per run.

MLflow draws each logged `test_*_beam{k}` metric as its own one-dot chart; these two
artifacts put the beam sizes next to each other, which is the comparison a user wants.
"""

from __future__ import annotations

import csv
import io
import math
import textwrap

from matplotlib.figure import Figure

BEAM_TABLE = "test_metrics_by_beam.csv"
BEAM_CHART = "test_metrics_by_beam.png"
ByBeam = dict[int, dict[str, float]]  # beam size -> metric name -> value


def beam_table(by_beam: ByBeam) -> str:
    """CSV: a `beam_size` column, then one column per metric, one row per beam size
    (ascending); the values are those logged as `test_{metric}_beam{k}`."""
    names = _metric_names(by_beam)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["beam_size", *names])
    for beam in sorted(by_beam):
        writer.writerow([beam, *(repr(float(by_beam[beam][name])) for name in names)])
    return buffer.getvalue()


def beam_chart(by_beam: ByBeam, title: str) -> Figure:
    """One panel per metric (their scales differ: BLEU 0-100 or 0-1, CIDEr-D 0-10), each
    with every beam size on its x axis and the value written at each point."""
    names = _metric_names(by_beam)
    beams = sorted(by_beam)
    columns = min(3, len(names))
    rows = math.ceil(len(names) / columns)
    width = max(6.4, 4.2 * columns)
    figure = Figure(figsize=(width, 3.4 * rows + 0.8), layout="constrained")
    figure.suptitle("\n".join(textwrap.wrap(title, int(width * 9))), fontsize=12)
    for number, name in enumerate(names):
        axes = figure.add_subplot(rows, columns, number + 1)
        values = [by_beam[beam][name] for beam in beams]
        axes.plot(beams, values, marker="o", color="tab:blue")
        for beam, value in zip(beams, values, strict=True):
            axes.annotate(f"{value:.3g}", (beam, value), textcoords="offset points",
                          xytext=(0, 7), ha="center", fontsize=9)
        axes.set_xticks(beams)
        axes.set_xlabel("beam size")
        axes.set_title(name.replace("_", " "), fontsize=11)
        axes.margins(x=0.15, y=0.25)
        axes.grid(alpha=0.3)
    return figure


def beam_artifacts(by_beam: ByBeam, title: str) -> dict[str, Figure | str]:
    """The table and the chart under their artifact names; nothing without any metric."""
    if not by_beam or not _metric_names(by_beam):
        return {}
    return {BEAM_TABLE: beam_table(by_beam), BEAM_CHART: beam_chart(by_beam, title)}


def _metric_names(by_beam: ByBeam) -> list[str]:
    """The metrics every beam size has, in the first beam size's order."""
    first = by_beam[min(by_beam)]
    return [name for name in first if all(name in values for values in by_beam.values())]

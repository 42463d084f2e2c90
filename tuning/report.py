"""`orchestrator report SWEEP_DIR`: the sweep as a self-contained HTML page and a Markdown
summary, written into the sweep folder.

Both hold the ranked trials, the best configuration, each axis' effect, learning curves
of the top trials, gradient norms against the clipping threshold, and the trials the
scheduler stopped early. The HTML embeds its plots; the Markdown links PNG files.
"""

from __future__ import annotations

import base64
import html
import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from orchestrator.tuning.sweep_results import SweepResults, read_results  # noqa: E402

TOP_TRIALS = 5  # learning and gradient-norm curves are drawn for this many trials
PLOTS_FOLDER = "report_plots"


@dataclass
class WrittenReport:
    html: Path
    markdown: Path
    files: list[Path] = field(default_factory=list)  # everything written, plots included
    best: dict[str, Any] | None = None  # the best configuration (axis -> value)
    ranking: pd.DataFrame = field(default_factory=pd.DataFrame)  # trials, best first


@dataclass
class Section:
    title: str
    text: str = ""
    table: pd.DataFrame | None = None
    figure: Figure | None = None
    figure_name: str = ""


def write_report(folder: Path) -> WrittenReport:
    results = read_results(folder)
    best = best_configuration(results)
    sections = _sections(results, best)
    plots = folder / PLOTS_FOLDER
    plots.mkdir(exist_ok=True)
    pngs = {section.figure_name: _png(section.figure)
            for section in sections if section.figure is not None}
    for name, data in pngs.items():
        (plots / f"{name}.png").write_bytes(data)
    title = f"Sweep {results.plan.name}"
    page = folder / "report.html"
    page.write_text(_html(title, sections, pngs))
    summary = folder / "report.md"
    summary.write_text(_markdown(title, sections))
    files = [page, summary, *(plots / f"{name}.png" for name in pngs)]
    return WrittenReport(page, summary, files, best, results.trials)


def best_configuration(results: SweepResults) -> dict[str, Any] | None:
    rows = results.combinations
    metric = results.combination_metric
    if rows.empty or rows[metric].isna().all():
        return None
    top = rows.iloc[0]
    return {"trial": top["trial"], **{axis: _plain(top[axis]) for axis in results.axes},
            metric: _plain(top[metric])}


def _sections(results: SweepResults, best: dict[str, Any] | None) -> list[Section]:
    plan = results.plan
    trained = len(results.trials) - len(results.failed)
    sections = [
        Section("Summary", _summary_text(results, best)),
        Section(f"Trials ranked by {plan.metric} ({plan.mode})",
                table=results.trials.drop(columns="error")),
    ]
    if len(results.failed):
        sections.append(Section(
            f"Failed trials ({len(results.failed)})", "error: the trial's root cause; its "
            "full traceback is in error.txt in the trial's folder.",
            table=results.failed[["trial", *plan.sweep["space"], "epochs", "error"]]))
    if results.evaluation_axes:
        sections.append(Section(
            f"Every trained model x evaluation setting ({len(results.combinations)} "
            f"combinations of {trained} models), ranked by test metric",
            f"test metric: {plan.beam_metric or 'test'} at the row's evaluation setting.",
            table=results.combinations,
        ))
    sections += [
        Section("Effect of each axis", table=_axis_effects(results),
                figure=_axis_figure(results), figure_name="axis_effects"),
        Section(f"Learning curves of the top {TOP_TRIALS} trials",
                figure=_learning_curves(results), figure_name="learning_curves"),
        Section("Gradient norm before clipping", _clipping_text(results),
                table=_clipping_table(results), figure=_grad_norm_figure(results),
                figure_name="grad_norms"),
        Section("Trials stopped early by the scheduler", table=_stopped(results)),
    ]
    if plan.sweep["scheduler"]["name"] == "pbt":
        sections.append(Section(
            "Population based training: every start from a checkpoint",
            "from checkpoint: the trial whose checkpoint it continued (its own after a pause, "
            "another's when cloned); values: what it trained with from there.",
            table=results.pbt_starts, figure=_learning_rates(results),
            figure_name="learning_rates"))
    return sections


def _summary_text(results: SweepResults, best: dict[str, Any] | None) -> str:
    plan = results.plan
    lines = [
        f"task {plan.task}; scheduler {plan.sweep['scheduler']['name']}; "
        f"{len(results.trials) - len(results.failed)} models trained of "
        f"{plan.models_expected} planned"
        + (f" ({len(results.failed)} failed)" if len(results.failed) else "")
        + f"; {len(results.combinations)} combinations evaluated",
        f"MLflow parent run {plan.parent_run_id} at {plan.tracking_uri}",
    ]
    if best:
        lines.append("best: " + ", ".join(f"{key}={value}" for key, value in best.items()))
    return "\n".join(lines)


def _axis_effects(results: SweepResults) -> pd.DataFrame:
    """Mean, best and count of the metric for each value of each axis."""
    rows = results.combinations
    metric = results.combination_metric
    best = "min" if results.plan.mode == "min" else "max"
    frames = []
    for axis in results.axes:
        grouped = rows.groupby(rows[axis].astype(str))[metric].agg(["mean", best, "count"])
        frames.append(grouped.reset_index().rename(columns={axis: "value"})
                      .assign(axis=axis)[["axis", "value", "mean", best, "count"]])
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def _axis_figure(results: SweepResults) -> Figure:
    axes_names = results.axes
    metric = results.combination_metric
    figure, panels = plt.subplots(1, len(axes_names), figsize=(3.2 * len(axes_names), 3),
                                  squeeze=False)
    for panel, axis in zip(panels[0], axes_names, strict=True):
        values = results.combinations[axis].astype(str)
        order = sorted(values.unique(), key=_sort_key)
        positions = values.map({value: index for index, value in enumerate(order)})
        panel.scatter(positions, results.combinations[metric], alpha=0.7)
        panel.set_xticks(range(len(order)), order, rotation=30)
        panel.set_xlabel(axis)
        panel.set_ylabel(metric)
    figure.tight_layout()
    return figure


def _learning_curves(results: SweepResults) -> Figure:
    metric = results.plan.metric
    figure, panel = plt.subplots(figsize=(6, 3.5))
    for trial in results.trials["trial"].head(TOP_TRIALS):
        curve = results.curves.get(trial, pd.DataFrame())
        if metric in curve:
            panel.plot(curve["epoch"] + 1, curve[metric], marker="o", label=trial)
    panel.set_xlabel("epoch")
    panel.xaxis.set_major_locator(MaxNLocator(integer=True))  # no epoch 1.2
    panel.set_ylabel(metric)
    panel.legend(fontsize="small")
    figure.tight_layout()
    return figure


def _learning_rates(results: SweepResults) -> Figure:
    """The learning rate each trial trained at, step by step: PBT's schedules."""
    figure, panel = plt.subplots(figsize=(6, 3.5))
    for trial in results.trials["trial"]:
        rates = results.learning_rates.get(trial)
        if rates is not None and not rates.empty:
            panel.step(rates["step"], rates["lr"], where="post", marker="o", label=trial)
    return _per_step_log_figure(figure, panel, "learning rate")


def _clip_of(results: SweepResults, trial: str) -> float | None:
    row = results.trials.loc[results.trials["trial"] == trial]
    if "optim.clip" in row and not row.empty:
        return row["optim.clip"].iloc[0]
    return results.plan.base_config["optim"]["clip"]


def _grad_norm_figure(results: SweepResults) -> Figure:
    figure, panel = plt.subplots(figsize=(6, 3.5))
    for trial in results.trials["trial"].head(TOP_TRIALS):
        norms = results.grad_norms.get(trial)
        if norms is None or norms.empty:
            continue
        line = panel.plot(norms["step"], norms["grad_norm"], linewidth=0.8, label=trial)[0]
        clip = _clip_of(results, trial)
        if clip:
            panel.axhline(clip, color=line.get_color(), linestyle="--", linewidth=0.8)
    return _per_step_log_figure(figure, panel, "gradient norm (dashed: clip)")


def _per_step_log_figure(figure: Figure, panel: Any, ylabel: str) -> Figure:
    """Finish a plot of one line per trial over training steps, on a log scale."""
    panel.set_yscale("log")
    panel.set_xlabel("step")
    panel.set_ylabel(ylabel)
    panel.legend(fontsize="small")
    figure.tight_layout()
    return figure


def _clipping_text(results: SweepResults) -> str:
    mode = results.plan.base_config["optim"]["clip_mode"]
    return (f"Clipping acts on every step whose norm is above the dashed line (clip_mode "
            f"{mode}; for clipping by value the line is only a guide).")


def _clipping_table(results: SweepResults) -> pd.DataFrame:
    rows = []
    for trial in results.trials["trial"]:
        norms = results.grad_norms.get(trial)
        clip = _clip_of(results, trial)
        if norms is None or norms.empty:
            continue
        clipped = float((norms["grad_norm"] > clip).mean()) if clip else 0.0
        rows.append({"trial": trial, "clip": clip, "median norm": norms["grad_norm"].median(),
                     "steps clipped %": round(100 * clipped, 1)})
    return pd.DataFrame(rows)


def _stopped(results: SweepResults) -> pd.DataFrame:
    stopped = results.trials[results.trials["stopped early"]]
    return stopped[["trial", *results.plan.sweep["space"], "epochs", results.plan.metric]]


# rendering --------------------------------------------------------------------------------
def _png(figure: Figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100)
    plt.close(figure)
    return buffer.getvalue()


_STYLE = """body{font-family:sans-serif;margin:2em;max-width:1100px}
table{border-collapse:collapse;font-size:13px}td,th{border:1px solid #ccc;padding:2px 6px}
pre{background:#f6f6f6;padding:8px}img{max-width:100%}"""


def _html(title: str, sections: list[Section], pngs: dict[str, bytes]) -> str:
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}"
             f"</title><style>{_STYLE}</style></head><body><h1>{html.escape(title)}</h1>"]
    for section in sections:
        parts.append(f"<h2>{html.escape(section.title)}</h2>")
        if section.text:
            parts.append(f"<pre>{html.escape(section.text)}</pre>")
        if section.table is not None:
            parts.append(_html_table(section.table))
        if section.figure_name in pngs:
            data = base64.b64encode(pngs[section.figure_name]).decode()
            # onload records the decoded size: a headless browser's DOM then shows the
            # plot really rendered, not only that the tag exists
            parts.append(f"<img class='plot' alt='{section.figure_name}' "
                         f"src='data:image/png;base64,{data}' onload=\"this.dataset.rendered="
                         f"this.naturalWidth+'x'+this.naturalHeight\">")
    parts.append("</body></html>")
    return "\n".join(parts)


def _html_table(table: pd.DataFrame) -> str:
    if table.empty:
        return "<p>none</p>"
    return table.to_html(index=False, float_format=lambda value: f"{value:.4g}",
                         classes="results", na_rep="-")


def _markdown(title: str, sections: list[Section]) -> str:
    parts = [f"# {title}"]
    for section in sections:
        parts.append(f"## {section.title}")
        if section.text:
            parts.append("\n".join(f"    {line}" for line in section.text.splitlines()))
        if section.table is not None:
            parts.append(section.table.to_markdown(index=False, floatfmt=".4g")
                         if not section.table.empty else "none")
        if section.figure_name:
            parts.append(f"![{section.figure_name}]({PLOTS_FOLDER}/{section.figure_name}.png)")
    return "\n\n".join(parts) + "\n"


def _sort_key(value: str) -> tuple[int, float | str]:
    try:
        return (0, float(value))
    except ValueError:
        return (1, value)


def _plain(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value

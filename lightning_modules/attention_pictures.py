"""Attention drawn so a person can read it: what each output word looked at, as a heatmap
over tokens or frames, or as a map over an image, always with a colour bar, labelled
axes and the sentence as title.

Figures are built with `Figure`, not pyplot: pyplot keeps every figure it made alive.
"""

from __future__ import annotations

import math
import textwrap

import torch
import torch.nn.functional as F
from matplotlib import colormaps
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize
from matplotlib.figure import Figure

from orchestrator.datasets.images import to_pixels

COLOUR_MAP = "viridis"  # perceptually even, readable in greyscale and to most colour-blind
CELL_INCHES = (0.5, 0.42)  # width per column (source token), height per row (output token)
MAX_INCHES = 22.0  # the longest side of a heatmap: long sentences get smaller cells


def attention_heatmap(weights: torch.Tensor, columns: list[str], rows: list[str], title: str,
                      column_label: str = "source", row_label: str = "output") -> Figure:
    """weights (len(rows), len(columns)): row i is what output `rows[i]` attended to.
    The colour scale is the weight itself, 0 to 1, so pictures compare with each other."""
    width = 2.8 + CELL_INCHES[0] * len(columns)
    height = 2.4 + CELL_INCHES[1] * len(rows) + 0.25 * title.count("\n")
    shrink = min(1.0, MAX_INCHES / max(width, height))
    figure = Figure(figsize=(max(6.0, width * shrink), max(4.5, height * shrink)),
                    layout="constrained")
    axes = figure.add_subplot()
    image = axes.imshow(weights.float().numpy(), cmap=COLOUR_MAP, vmin=0.0, vmax=1.0,
                        aspect="auto", interpolation="nearest")
    font = 11 if shrink == 1.0 else 8
    turn = max(map(len, columns), default=0) > 3  # words turn; frame numbers need not
    axes.set_xticks(range(len(columns)), columns, rotation=60 if turn else 0,
                    ha="right" if turn else "center", rotation_mode="anchor", fontsize=font)
    axes.set_yticks(range(len(rows)), rows, fontsize=font)
    axes.set_xlabel(column_label, fontsize=12)
    axes.set_ylabel(row_label, fontsize=12)
    axes.set_title(title, fontsize=12, loc="left")
    figure.colorbar(image, ax=axes, label="attention weight", shrink=0.9)
    return figure


def sentence_title(sentence: str, output: str | None, note: str, width: int = 90) -> str:
    """The sentence, '→ output' where there is one, and a note, wrapped to lines a figure
    title can hold."""
    lines = textwrap.wrap(sentence, width) or ["(empty)"]
    if output is not None:
        lines += textwrap.wrap(f"→ {output}", width)
    return "\n".join([*lines, note] if note else lines)


def image_attention(pixels: torch.Tensor, words: list[str], weights: torch.Tensor,
                    title: str) -> Figure:
    """The image, then once per word with its attention over the h x w feature map (weights
    (len(words), h*w)) upsampled onto it: coloured where the word looked, the more opaque
    the stronger, so the picture shows through where it did not; one scale for all."""
    image = to_pixels(pixels)
    side = math.isqrt(weights.size(1))
    maps = weights[:, : side * side].reshape(-1, 1, side, side).float()
    maps = F.interpolate(maps, size=image.shape[:2], mode="bilinear", align_corners=False)
    scale = Normalize(0.0, max(float(weights.max()), 1e-8))  # top: the strongest weight drawn
    colours = colormaps[COLOUR_MAP]
    columns = min(5, len(words) + 1)
    rows = math.ceil((len(words) + 1) / columns)
    figure = Figure(figsize=(2.6 * columns + 1.2, 2.6 * rows + 0.4 + 0.25 * title.count("\n")),
                    layout="constrained")
    figure.suptitle(title, fontsize=12)
    first = figure.add_subplot(rows, columns, 1)
    first.imshow(image)
    first.set_title("input", fontsize=11, color="dimgray")
    first.set_axis_off()
    for number, word in enumerate(words):
        heat = scale(maps[number, 0].numpy()).clip(0.0, 1.0)
        overlay = colours(heat)
        overlay[..., 3] = 0.85 * heat  # opaque where the word looked
        axes = figure.add_subplot(rows, columns, number + 2)
        axes.imshow(image)
        axes.imshow(overlay)
        axes.set_title(word, fontsize=11)
        axes.set_axis_off()
    figure.colorbar(ScalarMappable(scale, colours), ax=figure.axes,
                    label=f"attention weight ({side}x{side} map)", shrink=0.8)
    return figure

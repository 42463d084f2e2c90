"""Pictures of what a captioner does: a page of images (or clip strips) with the generated
and reference captions, and attention overlays (where on the image each word looked)."""

from __future__ import annotations

import math
import textwrap

import numpy as np
import torch
import torch.nn.functional as F
from matplotlib.figure import Figure

from orchestrator.datasets.images import to_pixels

PAGE_COLUMNS = 4
STRIP_FRAMES = 4  # frames shown side by side for a clip


def thumbnail(pixels: torch.Tensor) -> np.ndarray:
    """(3, H, W) image, or (F, 3, H, W) clip as a strip of evenly spaced frames -> RGB."""
    if pixels.dim() == 3:
        return to_pixels(pixels)
    picks = np.linspace(0, pixels.size(0) - 1, min(STRIP_FRAMES, pixels.size(0))).round()
    return np.concatenate([to_pixels(pixels[int(i)]) for i in picks], axis=1)


def captions_page(
    pixels: torch.Tensor, generated: list[str], references: list[list[str]]
) -> Figure:
    """A grid: each image with its generated caption (bold) and up to 3 references."""
    rows = math.ceil(len(generated) / PAGE_COLUMNS)
    thumbs = [thumbnail(pixels[number]) for number in range(len(generated))]
    height = 4.2 * thumbs[0].shape[0] / thumbs[0].shape[1] + 1.6  # the picture + captions
    figure = Figure(figsize=(4.2 * PAGE_COLUMNS, height * rows))
    for number, (caption, refs) in enumerate(zip(generated, references, strict=True)):
        axes = figure.add_subplot(rows, PAGE_COLUMNS, number + 1)
        axes.imshow(thumbs[number])
        axes.set_axis_off()
        wrapped = [textwrap.fill(r, 48) for r in refs[:3]]
        axes.set_title(textwrap.fill(caption or "(empty)", 40), fontsize=10, fontweight="bold")
        axes.text(0.0, -0.04, "\n".join(wrapped), transform=axes.transAxes, fontsize=7,
                  va="top", color="dimgray")
    figure.tight_layout()
    return figure


def attention_overlay(pixels: torch.Tensor, words: list[str], weights: torch.Tensor) -> Figure:
    """The image once per word, its attention over the h x w map (weights (len, h*w))
    upsampled onto it; brighter = more attention."""
    image = to_pixels(pixels)
    side = math.isqrt(weights.size(1))
    maps = weights[:, : side * side].reshape(-1, 1, side, side).float()
    maps = F.interpolate(maps, size=image.shape[:2], mode="bilinear", align_corners=False)
    columns = min(5, len(words))
    rows = math.ceil(len(words) / columns)
    figure = Figure(figsize=(2.2 * columns, 2.4 * rows))
    for number, word in enumerate(words):
        axes = figure.add_subplot(rows, columns, number + 1)
        axes.imshow(image)
        heat = maps[number, 0].numpy()
        axes.imshow(heat / max(float(heat.max()), 1e-8), cmap="magma", alpha=0.6)
        axes.set_title(word, fontsize=10)
        axes.set_axis_off()
    figure.tight_layout()
    return figure


def frame_attention(words: list[str], weights: torch.Tensor) -> Figure:
    """Words down, frames across; darker = more attention (video models)."""
    figure = Figure(figsize=(1 + 0.45 * weights.size(1), 1 + 0.4 * len(words)))
    axes = figure.add_subplot()
    axes.imshow(weights.numpy(), cmap="Greys", vmin=0.0, vmax=1.0, aspect="auto")
    axes.set_xticks(range(weights.size(1)), [str(i) for i in range(weights.size(1))])
    axes.set_yticks(range(len(words)), words)
    axes.set_xlabel("frame")
    figure.tight_layout()
    return figure

"""The picture a frame-labelling run leaves to look at: the first test clips, one row of
frames each, every frame captioned with its label and the model's (red where they differ)."""

from __future__ import annotations

import torch
from matplotlib.figure import Figure

from orchestrator.datasets.images import to_pixels

CLIPS_SHOWN = 6


def frame_label_figure(frames: torch.Tensor, truth: list[list[str]],
                       predicted: list[list[str]]) -> Figure:
    """frames (N, F, 3, H, W) with each frame's true and predicted label -> a figure of N
    rows by F frames."""
    clips, count = frames.shape[:2]
    figure = Figure(figsize=(1.1 * count + 0.6, 1.45 * clips + 0.5), layout="constrained")
    axes = figure.subplots(clips, count, squeeze=False)
    for row in range(clips):
        for column in range(count):
            axis = axes[row][column]
            axis.imshow(to_pixels(frames[row, column]), interpolation="nearest")
            axis.set_xticks([])
            axis.set_yticks([])
            right = truth[row][column] == predicted[row][column]
            axis.set_title(f"{truth[row][column]}\n{predicted[row][column]}", fontsize=7,
                           color="black" if right else "red")
    figure.suptitle("test clips: label (top) and prediction (bottom) per frame; red: wrong",
                    fontsize=9)
    return figure

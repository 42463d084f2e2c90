"""Captioning tasks the project generates, written in the layouts users bring, so tests and
first runs go through `data prepare` like real data.

`shapes`: one coloured shape in one quadrant of a black image (Flickr8k layout: images/ +
captions.txt); a captioner must name its colour, kind and place. `moving_shapes`: one
coloured shape crossing a clip (MSR-VTT layout: videos/*.mp4 + captions.csv); the
direction is only visible across frames, so a video model must read them in order.
Every item has three paraphrased references, as real caption sets have several.
"""

from __future__ import annotations

import csv
import random
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from orchestrator.datasets.images import encode_png
from orchestrator.datasets.video_frames import encode_mp4

COLOURS = {"red": (230, 40, 40), "green": (40, 200, 60), "blue": (60, 90, 250),
           "yellow": (240, 220, 40)}
SHAPES = ("circle", "square", "triangle")
QUADRANTS = {"top left": (0, 0), "top right": (1, 0), "bottom left": (0, 1),
             "bottom right": (1, 1)}
DIRECTIONS = {"left": (-1, 0), "right": (1, 0), "up": (0, -1), "down": (0, 1)}


def draw_shape(pixels: np.ndarray, shape: str, colour: str, centre: tuple[float, float],
               radius: float) -> np.ndarray:
    """A copy of `pixels` (H, W, 3) with the shape drawn at `centre`."""
    image = Image.fromarray(pixels)
    x, y = centre
    box = (x - radius, y - radius, x + radius, y + radius)
    draw, fill = ImageDraw.Draw(image), COLOURS[colour]
    if shape == "circle":
        draw.ellipse(box, fill=fill)
    elif shape == "square":
        draw.rectangle(box, fill=fill)
    else:
        draw.polygon([(x, y - radius), (x - radius, y + radius), (x + radius, y + radius)],
                     fill=fill)
    return np.asarray(image)


def shape_image(rng: random.Random, size: int = 32) -> tuple[np.ndarray, list[str]]:
    """One image and its three references."""
    colour, shape = rng.choice(list(COLOURS)), rng.choice(SHAPES)
    place = rng.choice(list(QUADRANTS))
    column, row = QUADRANTS[place]
    radius = size * rng.uniform(0.12, 0.18)
    half = size / 2
    centre = (column * half + rng.uniform(radius, half - radius),
              row * half + rng.uniform(radius, half - radius))
    pixels = draw_shape(np.zeros((size, size, 3), np.uint8), shape, colour, centre, radius)
    return pixels, [f"a {colour} {shape} in the {place}", f"a {colour} {shape} at the {place}",
                    f"there is a {colour} {shape} in the {place}"]


def moving_shape_clip(
    rng: random.Random, frames: int, size: int = 32
) -> tuple[np.ndarray, list[str]]:
    """(frames, size, size, 3) of one shape crossing the clip, and its three references."""
    colour, shape = rng.choice(list(COLOURS)), rng.choice(SHAPES)
    direction = rng.choice(list(DIRECTIONS))
    dx, dy = DIRECTIONS[direction]
    radius = size * 0.15
    low, high = radius + 1, size - radius - 1
    across = rng.uniform(low, high)  # the fixed coordinate
    path = np.linspace(low, high, frames)
    if dx < 0 or dy < 0:
        path = path[::-1]
    clip = [draw_shape(np.zeros((size, size, 3), np.uint8), shape, colour,
                       (float(p), across) if dx else (across, float(p)), radius)
            for p in path]
    return np.stack(clip), [f"a {colour} {shape} moves {direction}",
                            f"a {colour} {shape} is moving {direction}",
                            f"the {colour} {shape} goes {direction}"]


def write_shapes_folder(folder: Path, count: int, seed: int = 0, size: int = 32) -> Path:
    """images/NNNNNN.png + captions.txt (Flickr8k's CSV); returns the captions file."""
    rng = random.Random(seed)
    (folder / "images").mkdir(parents=True, exist_ok=True)
    captions = folder / "captions.txt"
    with captions.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["image", "caption"])
        for number in range(count):
            pixels, references = shape_image(rng, size)
            name = f"{number:06d}.png"
            (folder / "images" / name).write_bytes(encode_png(pixels))
            writer.writerows([name, caption] for caption in references)
    return captions


def write_moving_shapes_folder(
    folder: Path, count: int, seed: int = 0, size: int = 32, frames: tuple[int, int] = (6, 16)
) -> Path:
    """videos/clipNNNNNN.mp4 (between frames[0] and frames[1] frames) + captions.csv
    (MSR-VTT's `video_id,file,caption`); returns the captions file."""
    rng = random.Random(seed)
    (folder / "videos").mkdir(parents=True, exist_ok=True)
    captions = folder / "captions.csv"
    with captions.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["video_id", "file", "caption"])
        for number in range(count):
            clip, references = moving_shape_clip(rng, rng.randint(*frames), size)
            name = f"clip{number:06d}"
            (folder / "videos" / f"{name}.mp4").write_bytes(encode_mp4(clip))
            writer.writerows([name, f"videos/{name}.mp4", caption] for caption in references)
    return captions

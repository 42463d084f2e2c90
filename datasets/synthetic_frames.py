"""`curtain_shapes`: the frame-labelling task the project generates, written in the layout
users bring (`videos/*.mp4`, each with a `.json` list of one label per frame), so tests and
first runs go through `data prepare frame-labels` like real data.

A clip is a stage: shapes come on one after another, each moving across it in a random
colour, and before each one a grey curtain hides the stage for a frame or two. Every frame
is labelled with the shape on stage, the curtain's frames with the shape about to appear.
A frame alone shows its shape except under the curtain; reading the frames in order helps
little there (the next shape differs from the last, nothing more); only the frames after
the curtain tell. So a bi-directional RNN can label every frame and a uni-directional one
cannot, which is what the task is for.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np

from orchestrator.datasets.synthetic_captions import COLOURS, SHAPES, draw_shape
from orchestrator.datasets.video_frames import encode_mp4

CURTAIN_GREY = 128
CLIP_FRAMES = 12


def _segment_lengths(rng: random.Random, frames: int) -> list[int]:
    """Two or three acts of at least four frames each, filling the clip."""
    acts = rng.choice((2, 3))
    lengths = [4] * acts
    for _ in range(frames - 4 * acts):
        lengths[rng.randrange(acts)] += 1
    return lengths


def curtain_shapes_clip(
    rng: random.Random, frames: int = CLIP_FRAMES, size: int = 32
) -> tuple[np.ndarray, list[str]]:
    """(frames, size, size, 3) uint8 frames and the shape on stage in each."""
    pictures, labels, previous = [], [], None
    for length in _segment_lengths(rng, frames):
        shape = rng.choice([s for s in SHAPES if s != previous])
        colour = rng.choice(list(COLOURS))
        curtain = rng.randint(1, 2)
        radius = size * rng.uniform(0.15, 0.22)
        low, high = radius + 1, size - radius - 1
        start = (rng.uniform(low, high), rng.uniform(low, high))
        end = (rng.uniform(low, high), rng.uniform(low, high))
        for step in range(length):
            if step < curtain:
                pictures.append(np.full((size, size, 3), CURTAIN_GREY, np.uint8))
            else:
                t = (step - curtain) / max(1, length - curtain - 1)
                centre = (start[0] + t * (end[0] - start[0]), start[1] + t * (end[1] - start[1]))
                pictures.append(draw_shape(np.zeros((size, size, 3), np.uint8), shape, colour,
                                           centre, radius))
            labels.append(shape)
        previous = shape
    return np.stack(pictures), labels


def write_curtain_shapes_folder(folder: Path, count: int, seed: int = 0, size: int = 32) -> Path:
    """videos/clipNNNNNN.mp4 with videos/clipNNNNNN.json beside each (its frames' labels);
    returns the videos folder."""
    rng = random.Random(seed)
    videos = folder / "videos"
    videos.mkdir(parents=True, exist_ok=True)
    for number in range(count):
        clip, labels = curtain_shapes_clip(rng, CLIP_FRAMES, size)
        name = f"clip{number:06d}"
        (videos / f"{name}.mp4").write_bytes(encode_mp4(clip))
        (videos / f"{name}.json").write_text(json.dumps(labels))
    return videos

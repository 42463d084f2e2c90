"""Small pictures of captioning inputs for the captions page: an image, or a clip as a
strip of evenly spaced frames, encoded as JPEG bytes to inline in HTML."""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

from orchestrator.datasets.images import encode_jpg, to_pixels

STRIP_FRAMES = 4  # frames shown side by side for a clip
THUMBNAIL_SIDE = 160  # pixels: an image's longer side (a clip's frame's) at most


def thumbnail(pixels: torch.Tensor) -> np.ndarray:
    """(3, H, W) image, or (F, 3, H, W) clip as a strip of evenly spaced frames -> RGB
    floats in [0, 1]."""
    if pixels.dim() == 3:
        return to_pixels(pixels)
    picks = np.linspace(0, pixels.size(0) - 1, min(STRIP_FRAMES, pixels.size(0))).round()
    return np.concatenate([to_pixels(pixels[int(i)]) for i in picks], axis=1)


def thumbnail_jpeg(pixels: torch.Tensor, quality: int = 90) -> bytes:
    """`thumbnail` as JPEG bytes, each frame no larger than THUMBNAIL_SIDE: a page of 500
    items stays a few MB."""
    frames = 1 if pixels.dim() == 3 else min(STRIP_FRAMES, pixels.size(0))
    picture = Image.fromarray((thumbnail(pixels) * 255).round().astype(np.uint8))
    scale = min(1.0, THUMBNAIL_SIDE / max(picture.height, picture.width / frames))
    if scale < 1.0:
        picture = picture.resize((round(picture.width * scale), round(picture.height * scale)),
                                 Image.Resampling.LANCZOS)
    return encode_jpg(np.asarray(picture), quality)

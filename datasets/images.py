"""Encoded images (jpg/png bytes) <-> the normalised pixel tensors the encoders read.

Images are squashed to `size` x `size` (aspect ratio not kept): every image of a batch has
the same shape, and a CNN's feature map then has the same positions for attention.
"""

from __future__ import annotations

import io

import numpy as np
import torch
from PIL import Image

# ImageNet statistics, which pretrained ResNets expect; harmless for the small CNN.
MEAN = torch.tensor([0.485, 0.456, 0.406])
STD = torch.tensor([0.229, 0.224, 0.225])
IMAGE_SUFFIXES = {".jpg": "jpg", ".jpeg": "jpg", ".png": "png"}  # file suffix -> shard key


def decode_image(data: bytes, size: int) -> np.ndarray:
    """jpg/png bytes -> (size, size, 3) uint8 RGB."""
    with Image.open(io.BytesIO(data)) as image:
        return np.array(image.convert("RGB").resize((size, size), Image.BILINEAR))


def normalise(pixels: np.ndarray) -> torch.Tensor:
    """uint8 (..., H, W, 3) -> float (..., 3, H, W), standardised per channel."""
    values = torch.from_numpy(np.array(pixels, copy=True)).float() / 255.0
    return ((values - MEAN) / STD).movedim(-1, -3)


def to_pixels(tensor: torch.Tensor) -> np.ndarray:
    """normalise's inverse for drawing: (3, H, W) float -> (H, W, 3) floats in [0, 1]."""
    values = tensor.detach().cpu().movedim(-3, -1) * STD + MEAN
    return values.clamp(0.0, 1.0).numpy()


def image_tensor(data: bytes, size: int) -> torch.Tensor:
    """jpg/png bytes -> (3, size, size) normalised float tensor."""
    return normalise(decode_image(data, size))


def encode_png(pixels: np.ndarray) -> bytes:
    """(H, W, 3) uint8 -> png bytes (lossless, so generated images keep their exact colours)."""
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def encode_jpg(pixels: np.ndarray, quality: int = 90) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()

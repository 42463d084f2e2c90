"""Video clips <-> frames with PyAV: decode an mp4 (from a shard, in memory) to a fixed
number of uniformly sampled frames, and encode frames to mp4 (generated sample clips).

Frames are picked at the centres of `count` equal parts of the clip, so a clip shorter
than `count` frames repeats frames and a longer one skips them; every clip of a batch then
has the same shape.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import av
import numpy as np
import torch

from orchestrator.datasets.images import image_tensor, normalise
from orchestrator.datasets.manifest import DatasetError

VIDEO_SUFFIXES = (".mp4", ".avi", ".mkv", ".webm", ".mov", ".m4v")


def uniform_indices(total: int, count: int) -> list[int]:
    """`count` frame indices spread evenly over `total` frames (repeating when total < count)."""
    if total < 1:
        raise ValueError("the clip has no video frames")
    return [min(total - 1, int((i + 0.5) * total / count)) for i in range(count)]


def sample_frames(clip: bytes | Path, count: int, size: int) -> np.ndarray:
    """An encoded clip -> (count, size, size, 3) uint8 RGB frames, uniformly sampled."""
    frames = decode_frames(clip, size)
    return frames[uniform_indices(len(frames), count)]


def decode_frames(clip: bytes | Path, size: int) -> np.ndarray:
    """Every frame of an encoded clip, (T, size, size, 3) uint8 RGB.

    Every frame is decoded (a stream's frame count in the header is not always right) but
    kept only at `size`, so a long clip costs decoding time, not memory."""
    source = io.BytesIO(clip) if isinstance(clip, bytes) else str(clip)
    with av.open(source) as container:
        frames = [frame.to_ndarray(format="rgb24", width=size, height=size)
                  for frame in container.decode(video=0)]
    if not frames:
        raise ValueError("the clip has no video frames")
    return np.stack(frames)


def undecodable_clip(clip_id: object, sample: dict[str, Any],
                     error: Exception) -> DatasetError:
    """The one-line error for a shard's clip the decoder cannot read, naming the clip, its
    sample and shard, whatever PyAV raised."""
    return DatasetError(f"cannot decode clip {clip_id} (sample {sample.get('__key__')} in "
                        f"{sample.get('__url__')}): {type(error).__name__}: {error}")


def count_frames(path: Path) -> int:
    """How many frames a clip has, decoded (not the header's count, which can be wrong)."""
    with av.open(str(path)) as container:
        return sum(1 for _ in container.decode(video=0))


def check_readable(path: Path) -> None:
    """Open a clip and decode its first frame; raise if it cannot be."""
    with av.open(str(path)) as container:
        next(container.decode(video=0))


def encode_mp4(frames: np.ndarray, fps: int = 8) -> bytes:
    """(T, H, W, 3) uint8 frames (even H and W) -> an H.264 mp4 (MPEG-4 part 2 where the
    FFmpeg build has no x264), at a high quality so colours survive."""
    buffer = io.BytesIO()
    with av.open(buffer, mode="w", format="mp4") as container:
        codec = "libx264" if "libx264" in av.codecs_available else "mpeg4"
        stream = container.add_stream(codec, rate=fps)
        stream.height, stream.width = frames.shape[1:3]
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": "12"} if codec == "libx264" else {"qscale": "2"}
        for pixels in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(pixels, format="rgb24")))
        container.mux(stream.encode())
    return buffer.getvalue()


def media_tensor(data: bytes | Path, media: dict[str, Any]) -> torch.Tensor:
    """An encoded image or clip (bytes or a file) -> the tensor a captioner reads, prepared
    as in training; `media` is the checkpoint's kind, image_size and frames."""
    if media["kind"] == "video":
        return normalise(sample_frames(data, media["frames"], media["image_size"]))
    return image_tensor(data if isinstance(data, bytes) else data.read_bytes(),
                        media["image_size"])

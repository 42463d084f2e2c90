"""What a clip becomes in a shard: its mp4 as it is (decoded later, in the loader
workers), or `frames` uniformly sampled frames as `000.jpg`, `001.jpg`, ... (any container
PyAV reads, decoded once here). Clips that cannot be decoded are named, all at once."""

from __future__ import annotations

import warnings
from collections.abc import Callable

from orchestrator.datasets.caption_shards import MediaFields
from orchestrator.datasets.caption_sources import CaptionedItem
from orchestrator.datasets.images import encode_jpg
from orchestrator.datasets.video_frames import check_readable, sample_frames


def mp4_fields(item: CaptionedItem) -> dict[str, bytes]:
    if item.path.suffix.lower() != ".mp4":
        raise ValueError(f"{item.path.name} is not an mp4; store extracted frames instead "
                         "(--frames N)")
    return {"mp4": item.path.read_bytes()}


def frame_fields(count: int, size: int) -> MediaFields:
    """Sampled frames as numbered jpgs, so readers need no video decoder."""
    def fields(item: CaptionedItem) -> dict[str, bytes]:
        try:
            frames = sample_frames(item.path, count, size)
        except Exception as exc:  # noqa: BLE001 - name the clip whatever PyAV raised
            raise ValueError(f"cannot decode clip {item.path.name}: {exc}") from exc
        return {f"{number:03d}.jpg": encode_jpg(frame) for number, frame in enumerate(frames)}

    return fields


def readable_clips(
    items: list[CaptionedItem], skip_unreadable: bool,
    check: Callable[[CaptionedItem], None] = lambda item: check_readable(item.path),
) -> list[CaptionedItem]:
    """The clips PyAV can decode. Unreadable ones are an error naming every one of them,
    or with `skip_unreadable` a warning naming them."""
    readable, broken = [], []
    for item in items:
        try:
            check(item)
            readable.append(item)
        except Exception as exc:  # noqa: BLE001 - any decoder failure means unreadable
            broken.append(f"{item.path.name} ({type(exc).__name__}: {exc})")
    if broken and not skip_unreadable:
        raise ValueError(f"{len(broken)} unreadable clip(s): {'; '.join(broken)}; "
                         "fix or remove them, or pass --skip-unreadable")
    if broken:
        warnings.warn(f"skipped {len(broken)} unreadable clip(s): {'; '.join(broken)}",
                      stacklevel=2)
    return readable

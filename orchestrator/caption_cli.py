"""The captioning commands: `data prepare captions`, `data prepare video` and `caption`.

Registered into the main parser by `cli.py`, like the k8s commands, so the captioning
options live beside each other and not in one long parser function.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import Any

from orchestrator.errors import OrchestratorError

IMAGE_FORMATS = ("auto", "flickr", "coco")


def register_caption_commands(
    commands: Any, kinds: Any, common: argparse.ArgumentParser
) -> None:
    """`commands`: the top-level subparsers; `kinds`: those of `data prepare`."""
    images = kinds.add_parser(
        "captions", parents=[common], help="captioned images -> image + captions shards",
        description="Flickr8k layout (captions.txt, CSV `image,caption`) or COCO layout "
        "(captions_*.json). Images are split into train/val/test by image, never by caption.",
    )
    images.add_argument("--captions", type=Path, nargs="+", required=True,
                        help="captions.txt, or one or more COCO captions_*.json")
    images.add_argument("--images", type=Path, required=True, help="the folder of images")
    images.add_argument("--format", choices=IMAGE_FORMATS, default="auto",
                        help="auto: .json is COCO, anything else Flickr8k's CSV")
    _common_prepare_arguments(images)
    images.set_defaults(handler=_prepare_captions)

    video = kinds.add_parser(
        "video", parents=[common], help="captioned video clips -> clip + captions shards",
        description="MSR-VTT/MSVD-style CSV or MSR-VTT JSON captions and a folder of clips. "
        "Shards hold each mp4 as it is (decoded by the loader workers), or with --frames N "
        "that many uniformly sampled frames as jpgs.",
    )
    video.add_argument("--captions", type=Path, required=True, help="a .csv or .json file")
    video.add_argument("--videos", type=Path, required=True, help="the folder of clips")
    video.add_argument("--frames", type=int, help="store N sampled frames instead of the mp4")
    video.add_argument("--frame-size", type=int, default=128,
                       help="with --frames: frames are resized to this square size")
    video.add_argument("--skip-unreadable", action="store_true",
                       help="drop clips PyAV cannot decode (named in a warning)")
    _common_prepare_arguments(video)
    video.set_defaults(handler=_prepare_video)

    caption = commands.add_parser(
        "caption", parents=[common], help="caption images or video clips with a checkpoint"
    )
    caption.add_argument("checkpoint", help="a captioning .ckpt file or Ray checkpoint folder")
    caption.add_argument("files", nargs="+", type=Path, metavar="IMAGE_OR_VIDEO")
    caption.add_argument("--beam-size", type=int, default=3)
    caption.set_defaults(handler=_caption)


def _common_prepare_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    parser.add_argument("--val-fraction", type=float, default=0.1)
    parser.add_argument("--test-fraction", type=float, default=0.1)
    parser.add_argument("--seed", type=int, default=0, help="of the split by item")
    parser.add_argument("--min-freq", type=int, default=1)
    parser.add_argument("--max-vocab", type=int, default=None)
    parser.add_argument("--samples-per-shard", type=int, default=1000)


def _prepare_captions(args: argparse.Namespace) -> int:
    from orchestrator.datasets.caption_sources import read_coco_captions, read_flickr_captions

    if not args.images.is_dir():
        raise OrchestratorError(f"image folder {args.images} does not exist")
    items = []
    for path in args.captions:
        coco = args.format == "coco" or (args.format == "auto" and path.suffix == ".json")
        reader = read_coco_captions if coco else read_flickr_captions
        items += _read(reader, path, args.images)
    return _write(args, items, "image_captioning", None, {"media": "image"})


def _prepare_video(args: argparse.Namespace) -> int:
    from orchestrator.datasets.caption_sources import read_video_csv, read_video_json
    from orchestrator.datasets.video_shards import frame_fields, mp4_fields, readable_clips

    if not args.videos.is_dir():
        raise OrchestratorError(f"video folder {args.videos} does not exist")
    reader = read_video_json if args.captions.suffix == ".json" else read_video_csv
    items = _read(reader, args.captions, args.videos)
    try:
        items = readable_clips(items, args.skip_unreadable)
    except ValueError as exc:
        raise OrchestratorError(str(exc)) from None
    if args.frames:
        media, text = frame_fields(args.frames, args.frame_size), {"media": "frames"}
    else:
        media, text = mp4_fields, {"media": "mp4"}
    return _write(args, items, "video_captioning", media, text)


def _read(reader: Callable[[Path, Path], list[Any]], path: Path, folder: Path) -> list[Any]:
    if not path.is_file():
        raise OrchestratorError(f"captions file {path} does not exist")
    try:
        return reader(path, folder)
    except (ValueError, KeyError) as exc:
        raise OrchestratorError(str(exc)) from None


def _write(args: argparse.Namespace, items: list[Any], task: str, media: Any,
           text: dict[str, str]) -> int:
    from orchestrator.datasets.caption_shards import prepare_captions, split_items

    try:
        splits = split_items(items, args.val_fraction, args.test_fraction, args.seed)
        options = {"media": media} if media else {}
        manifest = prepare_captions(
            splits, args.out, task, min_freq=args.min_freq, max_vocab=args.max_vocab,
            samples_per_shard=args.samples_per_shard, text=text, **options,
        )
    except ValueError as exc:
        raise OrchestratorError(str(exc)) from None
    for name, info in manifest.splits.items():
        print(f"{name}: {info.samples} items, {info.tokens} caption words, "
              f"{len(info.shards)} shards")
    print(f"wrote {args.out / 'dataset.json'}")
    return 0


def _caption(args: argparse.Namespace) -> int:
    from orchestrator.launch import checkpoint_file
    from orchestrator.lightning_modules.captioning import load_captioner

    checkpoint = checkpoint_file(args.checkpoint)
    for path in args.files:
        if not path.is_file():
            raise OrchestratorError(f"{path} does not exist")
    module = load_captioner(checkpoint)
    for start in range(0, len(args.files), 16):
        chunk = args.files[start : start + 16]
        pixels = _read_media(chunk, module.media)
        for path, caption in zip(chunk, module.caption(pixels, args.beam_size), strict=True):
            print(f"{path}\t{caption}")
    return 0


def _read_media(paths: list[Path], media: dict[str, Any]) -> Any:
    """Files -> the batch tensor the checkpoint's model reads, prepared as in training."""
    import torch

    from orchestrator.datasets.images import IMAGE_SUFFIXES, image_tensor, normalise
    from orchestrator.datasets.video_frames import VIDEO_SUFFIXES, sample_frames

    suffixes = VIDEO_SUFFIXES if media["kind"] == "video" else tuple(IMAGE_SUFFIXES)
    tensors = []
    for path in paths:
        if path.suffix.lower() not in suffixes:
            raise OrchestratorError(f"{path} is not a {media['kind']} ({', '.join(suffixes)}); "
                                    f"the checkpoint is a {media['kind']} captioner")
        try:
            if media["kind"] == "video":
                tensors.append(normalise(sample_frames(path, media["frames"],
                                                       media["image_size"])))
            else:
                tensors.append(image_tensor(path.read_bytes(), media["image_size"]))
        except Exception as exc:  # noqa: BLE001 - PIL and PyAV raise many kinds
            raise OrchestratorError(f"cannot read {path}: {exc}") from None
    return torch.stack(tensors)

"""Inference with a trained checkpoint: `generate`, `classify`, `translate`, `caption`,
`label-frames`.

A checkpoint is a .ckpt file, a Ray checkpoint folder, or a registered model of the
tracking store (`models:/NAME@ALIAS`, `models:/NAME/VERSION`); the flags' defaults are
those of the registered model's predict params (`registered_model.SERVING`)."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from orchestrator.cli.arguments import positive_float, positive_int, read_stdin, read_text
from orchestrator.errors import OrchestratorError
from orchestrator.registered_model import SERVING

CHECKPOINT_HELP = ("a {task}.ckpt file, a Ray checkpoint folder, or a registered model: "
                   "models:/NAME@ALIAS or models:/NAME/VERSION ($MLFLOW_TRACKING_URI, "
                   "else ./mlflow.db)")
ENSEMBLE_HELP = ("more checkpoints of the same task and vocabulary: the search averages "
                 "their next-token probabilities with the first one's (an ensemble)")


def register(commands: Any, common: argparse.ArgumentParser) -> None:
    generate = commands.add_parser(
        "generate", parents=[common], help="sample text from a language-model checkpoint"
    )
    generate.add_argument("checkpoint", help=CHECKPOINT_HELP.format(task="language-model "))
    sampling = SERVING["language_model"].params
    generate.add_argument("--prompt", default="the ")
    generate.add_argument("--length", type=positive_int, default=sampling["length"])
    generate.add_argument("--temperature", type=positive_float,
                          default=sampling["temperature"])
    generate.add_argument("--seed", type=int, default=sampling["seed"])
    generate.set_defaults(handler=_generate)

    classify = commands.add_parser(
        "classify", parents=[common], help="label sentences (one per line on stdin)"
    )
    classify.add_argument("checkpoint", help=CHECKPOINT_HELP.format(task="sentiment "))
    classify.set_defaults(handler=_classify)

    translate = commands.add_parser(
        "translate", parents=[common], help="translate sentences (stdin or --input FILE)"
    )
    translate.add_argument("checkpoint", help=CHECKPOINT_HELP.format(task="translation "))
    translate.add_argument("--beam-size", type=positive_int,
                           default=SERVING["translation"].params["beam_size"])
    translate.add_argument("--input", type=Path, help="one sentence a line (default: stdin)")
    translate.add_argument("--ensemble", nargs="+", default=[], metavar="CHECKPOINT",
                           help=ENSEMBLE_HELP)
    translate.set_defaults(handler=_translate)

    caption = commands.add_parser(
        "caption", parents=[common], help="caption images or video clips with a checkpoint"
    )
    caption.add_argument("checkpoint", help=CHECKPOINT_HELP.format(task="captioning "))
    caption.add_argument("files", nargs="+", type=Path, metavar="IMAGE_OR_VIDEO")
    caption.add_argument("--beam-size", type=positive_int,
                         default=SERVING["image_captioning"].params["beam_size"])
    caption.add_argument("--ensemble", nargs="+", default=[], metavar="CHECKPOINT",
                         help=ENSEMBLE_HELP)
    caption.set_defaults(handler=_caption)

    label_frames = commands.add_parser(
        "label-frames", parents=[common],
        help="label every sampled frame of video clips with a checkpoint",
    )
    label_frames.add_argument("checkpoint",
                              help=CHECKPOINT_HELP.format(task="video_frame_classification "))
    label_frames.add_argument("files", nargs="+", type=Path, metavar="VIDEO")
    label_frames.set_defaults(handler=_label_frames)


def _generate(args: argparse.Namespace) -> int:
    module = _load_checkpoint(args.checkpoint, "language_model")
    print(module.generate_text(args.prompt, args.length, args.temperature, seed=args.seed))
    return 0


def _load_checkpoint(path: str, *tasks: str, ensemble: Sequence[str] = ()) -> Any:
    """The trained module in `path` (a file, a folder or a `models:/` URI; read
    weights-only), if it is of one of `tasks`; with `ensemble`, decoding with those
    checkpoints' models too."""
    from orchestrator.registered_model import resolve_checkpoint
    from orchestrator.worker.tasks import load_ensemble

    return load_ensemble([resolve_checkpoint(item) for item in (path, *ensemble)], tasks)


def _classify(args: argparse.Namespace) -> int:
    # The checkpoint first: stdin waits for typing, and a wrong path should not.
    module = _load_checkpoint(args.checkpoint, "sentiment")
    sentences = [line.strip() for line in read_stdin().splitlines() if line.strip()]
    for start in range(0, len(sentences), 256):
        chunk = sentences[start : start + 256]
        for sentence, label in zip(chunk, module.classify(chunk), strict=True):
            print(f"{label}\t{sentence}")
    return 0


def _translate(args: argparse.Namespace) -> int:
    # A file is read first (a bad one costs no model load); stdin after the checkpoint,
    # since it waits for typing and a wrong checkpoint path should not.
    text = read_text(args.input) if args.input else None
    module = _load_checkpoint(args.checkpoint, "translation", ensemble=args.ensemble)
    lines = (text if text is not None else read_stdin()).splitlines()
    sentences = [line.strip() for line in lines if line.strip()]
    for start in range(0, len(sentences), 64):
        for translation in module.translate(sentences[start : start + 64], args.beam_size):
            print(translation)
    return 0


def _caption(args: argparse.Namespace) -> int:
    _require_files(args.files)
    module = _load_checkpoint(args.checkpoint, "image_captioning", "video_captioning",
                              ensemble=args.ensemble)
    for start in range(0, len(args.files), 16):
        chunk = args.files[start : start + 16]
        pixels = _read_media(chunk, module.media)
        for path, caption in zip(chunk, module.caption(pixels, args.beam_size), strict=True):
            print(f"{path}\t{caption}")
    return 0


def _label_frames(args: argparse.Namespace) -> int:
    """One line per clip: its path, then the label of each of its sampled frames."""
    _require_files(args.files)
    module = _load_checkpoint(args.checkpoint, "video_frame_classification")
    for start in range(0, len(args.files), 16):
        chunk = args.files[start : start + 16]
        labelled = module.label_frames(_read_media(chunk, module.media))
        for path, labels in zip(chunk, labelled, strict=True):
            print(f"{path}\t{' '.join(labels)}")
    return 0


def _require_files(paths: list[Path]) -> None:
    """Checked before the checkpoint loads: a wrong path costs no model load."""
    for path in paths:
        if not path.is_file():
            raise OrchestratorError(f"{path} does not exist")


def _read_media(paths: list[Path], media: dict[str, Any]) -> Any:
    """Files -> the batch tensor the checkpoint's model reads, prepared as in training."""
    import torch

    from orchestrator.datasets.images import IMAGE_SUFFIXES
    from orchestrator.datasets.video_frames import VIDEO_SUFFIXES, media_tensor

    suffixes = VIDEO_SUFFIXES if media["kind"] == "video" else tuple(IMAGE_SUFFIXES)
    tensors = []
    for path in paths:
        if path.suffix.lower() not in suffixes:
            raise OrchestratorError(f"{path} is not a {media['kind']} ({', '.join(suffixes)}); "
                                    f"the checkpoint reads {media['kind']}s")
        try:
            tensors.append(media_tensor(path, media))
        except Exception as exc:  # noqa: BLE001 - PIL and PyAV raise many kinds
            raise OrchestratorError(f"cannot read {path}: {exc}") from None
    return torch.stack(tensors)

"""`orchestrator data prepare KIND` (raw data -> WebDataset shards + dataset.json) for every
kind, and `orchestrator data verify`.

Every kind writes through `datasets.dataset_folder`: into a temporary folder beside --out,
moved into place when complete, so an existing dataset is replaced only with --overwrite and
only by a complete one. --out is checked before any input is read."""

from __future__ import annotations

import argparse
import functools
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from orchestrator.cli.arguments import fraction, positive_int, read_text
from orchestrator.errors import OrchestratorError

if TYPE_CHECKING:
    from orchestrator.datasets.manifest import DatasetManifest

IMAGE_FORMATS = ("auto", "flickr", "coco")


def register(commands: Any, common: argparse.ArgumentParser) -> None:
    data = commands.add_parser("data", parents=[common], help="prepare and check datasets")
    data_commands = data.add_subparsers(title="data commands")
    verify = data_commands.add_parser(
        "verify", parents=[common], help="check a local dataset's files against dataset.json",
        description="Hashes every file (no cache) and compares sizes and sha256 checksums "
        "with dataset.json; fails when dataset.json has no checksums.",
    )
    verify.add_argument("path", help="a dataset folder")
    verify.set_defaults(handler=_verify)
    prepare = data_commands.add_parser(
        "prepare", parents=[common], help="raw data -> WebDataset shards + dataset.json"
    )
    kinds = prepare.add_subparsers(title="kinds")
    for register_kind in (_register_text, _register_classification, _register_translation,
                          _register_captions, _register_video, _register_frame_labels):
        register_kind(kinds, common)


def _register_text(kinds: Any, common: argparse.ArgumentParser) -> None:
    text = kinds.add_parser(
        "text", parents=[common], help="text files for language modelling",
        description="Either --input FILE (split by fractions, contiguous) or --train/--val/--test.",
    )
    text.add_argument("--input", type=Path, help="one text file to split into train/val/test")
    text.add_argument("--val-fraction", type=fraction, default=0.05)
    text.add_argument("--test-fraction", type=fraction, default=0.05)
    text.add_argument("--train", type=Path)
    text.add_argument("--val", type=Path)
    text.add_argument("--test", type=Path)
    _output_arguments(text)
    text.add_argument("--level", choices=["char", "word"], default="char")
    text.add_argument("--sample-tokens", type=positive_int, default=1024,
                      help="tokens per sample (a contiguous segment of text)")
    text.add_argument("--samples-per-shard", type=positive_int, default=64)
    text.add_argument("--min-freq", type=positive_int, default=1)
    text.add_argument("--max-vocab", type=positive_int, default=None)
    text.set_defaults(handler=_prepare_text)


def _register_classification(kinds: Any, common: argparse.ArgumentParser) -> None:
    labelled = kinds.add_parser(
        "classification", parents=[common], help="labelled sentences for classification",
        description="SST `stsa.*` files (`label sentence` per line) or SST parse trees.",
    )
    labelled.add_argument("--train", type=Path, required=True)
    labelled.add_argument("--val", type=Path)
    labelled.add_argument("--test", type=Path)
    _output_arguments(labelled)
    labelled.add_argument("--format", choices=["lines", "trees"], default="lines",
                          help="`label sentence` lines, or SST trees (root label)")
    labelled.add_argument("--labels", choices=["fine", "binary"], default="fine",
                          help="trees: 5 classes, or 2 with neutral dropped")
    labelled.add_argument("--phrases", action="store_true",
                          help="trees: train on every labelled phrase of the training trees, "
                          "each distinct phrase once (val and test keep whole sentences)")
    labelled.add_argument("--keep-case", action="store_true", help="do not lower-case")
    labelled.add_argument("--min-freq", type=positive_int, default=1)
    labelled.add_argument("--max-vocab", type=positive_int, default=None)
    labelled.set_defaults(handler=_prepare_classification)


def _register_translation(kinds: Any, common: argparse.ArgumentParser) -> None:
    parallel = kinds.add_parser(
        "translation", parents=[common], help="parallel text for translation",
        description="Files PREFIX.SRC and PREFIX.TGT per split, one sentence a line "
        "(the Multi30k and fairseq-preprocess layout).",
    )
    parallel.add_argument("-s", "--source-lang", required=True)
    parallel.add_argument("-t", "--target-lang", required=True)
    parallel.add_argument("--train", required=True, help="prefix of the training files")
    parallel.add_argument("--val", help="prefix of the validation files")
    parallel.add_argument("--test", help="prefix of the test files")
    _output_arguments(parallel)
    parallel.add_argument("--lowercase", action="store_true")
    parallel.add_argument("--min-freq", type=positive_int, default=2)
    parallel.add_argument("--max-vocab", type=positive_int, default=None)
    parallel.add_argument("--samples-per-shard", type=positive_int, default=5000)
    parallel.add_argument("--subword", choices=["bpe", "unigram"],
                          help="sentencepiece subwords instead of Moses words")
    parallel.add_argument("--subword-vocab-size", type=positive_int, default=8000)
    parallel.add_argument("--subword-joint", action="store_true",
                          help="one sentencepiece model for both languages: one vocabulary, "
                          "which model.share_embeddings needs")
    parallel.set_defaults(handler=_prepare_translation)


def _register_captions(kinds: Any, common: argparse.ArgumentParser) -> None:
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


def _register_video(kinds: Any, common: argparse.ArgumentParser) -> None:
    video = kinds.add_parser(
        "video", parents=[common], help="captioned video clips -> clip + captions shards",
        description="MSR-VTT/MSVD-style CSV or MSR-VTT JSON captions and a folder of clips. "
        "Shards hold each mp4 as it is (decoded by the loader workers), or with --frames N "
        "that many uniformly sampled frames as jpgs.",
    )
    video.add_argument("--captions", type=Path, required=True, help="a .csv or .json file")
    video.add_argument("--videos", type=Path, required=True, help="the folder of clips")
    video.add_argument("--frames", type=positive_int,
                       help="store N sampled frames instead of the mp4")
    video.add_argument("--frame-size", type=positive_int, default=128,
                       help="with --frames: frames are resized to this square size")
    video.add_argument("--skip-unreadable", action="store_true",
                       help="drop clips PyAV cannot decode (named in a warning)")
    _common_prepare_arguments(video)
    video.set_defaults(handler=_prepare_video)


def _register_frame_labels(kinds: Any, common: argparse.ArgumentParser) -> None:
    labelled = kinds.add_parser(
        "frame-labels", parents=[common],
        help="video clips labelled frame by frame -> clip + labels shards",
        description="A folder of mp4 clips, each with a JSON list beside it (clip7.mp4, "
        "clip7.json) holding one label per frame of the clip. Clips are split into "
        "train/val/test by clip; the labels are the training split's.",
    )
    labelled.add_argument("--videos", type=Path, required=True,
                          help="the folder of clips and their label lists")
    _output_arguments(labelled)
    labelled.add_argument("--val-fraction", type=fraction, default=0.1)
    labelled.add_argument("--test-fraction", type=fraction, default=0.1)
    labelled.add_argument("--seed", type=int, default=0, help="of the split by clip")
    labelled.add_argument("--samples-per-shard", type=positive_int, default=250)
    labelled.set_defaults(handler=_prepare_frame_labels)


def _output_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace the dataset at --out (only once the new one is complete)")


def _common_prepare_arguments(parser: argparse.ArgumentParser) -> None:
    _output_arguments(parser)
    parser.add_argument("--val-fraction", type=fraction, default=0.1)
    parser.add_argument("--test-fraction", type=fraction, default=0.1)
    parser.add_argument("--seed", type=int, default=0, help="of the split by item")
    parser.add_argument("--min-freq", type=positive_int, default=1)
    parser.add_argument("--max-vocab", type=positive_int, default=None)
    parser.add_argument("--samples-per-shard", type=positive_int, default=1000)



def _verify(args: argparse.Namespace) -> int:
    """The explicit check: hashes every file, never trusting the cache a launch uses, and
    fails where there is nothing to check against (a pass must mean something)."""
    from orchestrator.datasets.manifest import (
        check_local_shards,
        is_local,
        load_manifest,
        rebuild_hint,
    )
    from orchestrator.datasets.verification import damaged_files

    manifest = load_manifest(args.path)
    if not is_local(manifest.location):
        raise OrchestratorError(f"{args.path} is not a local folder; data verify checks "
                                "local datasets (copy it here first)")
    if not manifest.checksums:
        raise OrchestratorError(
            f"{args.path}/dataset.json has no checksums, so its files cannot be verified; "
            f"{rebuild_hint(manifest)}"
        )
    check_local_shards(manifest)
    damaged = damaged_files(manifest, use_cache=False)
    if damaged:
        raise OrchestratorError(
            f"{args.path}: {', '.join(damaged)}; {rebuild_hint(manifest)}"
        )
    print(f"{args.path}: all {len(manifest.checksums)} files match dataset.json")
    return 0


def _out_checked_first(
    handler: Callable[[argparse.Namespace], int],
) -> Callable[[argparse.Namespace], int]:
    """Refuse an occupied --out before reading any input: reading and tokenising a corpus
    can take minutes that a refusal at the end would waste."""

    @functools.wraps(handler)
    def checked(args: argparse.Namespace) -> int:
        from orchestrator.datasets.dataset_folder import refuse_existing

        refuse_existing(args.out, args.overwrite)
        return handler(args)

    return checked


def _build(args: argparse.Namespace, write: Callable[[Path], DatasetManifest]) -> DatasetManifest:
    """Run a writer into a temporary folder and move the dataset to --out when complete;
    a writer's complaint about its input (ValueError) is the user's one-line error."""
    from orchestrator.datasets.dataset_folder import build_dataset

    try:
        return build_dataset(args.out, write, overwrite=args.overwrite)
    except ValueError as exc:
        raise OrchestratorError(str(exc)) from None



@_out_checked_first
def _prepare_text(args: argparse.Namespace) -> int:
    from orchestrator.datasets.text_shards import prepare_text, split_by_fraction
    from orchestrator.datasets.tokenizer import Tokenizer

    if args.input is not None:
        splits = split_by_fraction(read_text(args.input), args.val_fraction, args.test_fraction)
    elif args.train is not None:
        named = {"train": args.train, "val": args.val, "test": args.test}
        splits = {name: read_text(path) for name, path in named.items() if path is not None}
    else:
        raise OrchestratorError("give --input FILE, or --train FILE [--val FILE --test FILE]")
    manifest = _build(args, lambda folder: prepare_text(
        splits, folder, args.level, args.sample_tokens, args.samples_per_shard,
        args.min_freq, args.max_vocab,
    ))
    vocab = Tokenizer.from_json(manifest.read_file(manifest.vocab_file))
    for name, info in manifest.splits.items():
        print(f"{name}: {info.samples} samples, {info.tokens} tokens, {len(info.shards)} shards")
    print(f"wrote {args.out / 'dataset.json'} ({len(vocab)} {args.level} tokens in the vocabulary)")
    return 0



@_out_checked_first
def _prepare_classification(args: argparse.Namespace) -> int:
    from orchestrator.datasets import classification_shards as shards

    if args.phrases and args.format != "trees":
        raise OrchestratorError("--phrases needs --format trees (phrase labels come from the "
                                "SST parse trees)")

    def read(path: Path, split: str) -> list[tuple[str, str]]:
        read_text(path)  # missing, empty or not UTF-8: named in one line
        try:
            if args.format == "trees":
                return shards.read_sst_trees(path, binary=args.labels == "binary",
                                             phrases=args.phrases and split == "train")
            return shards.read_labelled_lines(path)
        except ValueError as exc:  # the readers name the file and line
            raise OrchestratorError(str(exc)) from None

    named = {"train": args.train, "val": args.val, "test": args.test}
    splits = {name: read(path, name) for name, path in named.items() if path is not None}
    labels = None
    if args.format == "trees":
        labels = shards.SST_BINARY_LABELS if args.labels == "binary" else shards.SST_FINE_LABELS
    manifest = _build(args, lambda folder: shards.prepare_classification(
        splits, folder, labels, lowercase=not args.keep_case, min_freq=args.min_freq,
        max_vocab=args.max_vocab,
    ))
    for name, info in manifest.splits.items():
        kind = "phrases" if args.phrases and name == "train" else "sentences"
        print(f"{name}: {info.samples} {kind}, {len(info.shards)} shards")
    print(f"wrote {args.out / 'dataset.json'} (labels: {', '.join(manifest.labels or [])})")
    return 0



@_out_checked_first
def _prepare_translation(args: argparse.Namespace) -> int:
    from orchestrator.datasets.translation_shards import prepare_translation, read_parallel

    if args.subword_joint and args.subword is None:
        raise OrchestratorError("--subword-joint needs --subword bpe or --subword unigram")
    prefixes = {"train": args.train, "val": args.val, "test": args.test}
    splits = {}
    for name, prefix in prefixes.items():
        if prefix is None:
            continue
        source = Path(f"{prefix}.{args.source_lang}")
        target = Path(f"{prefix}.{args.target_lang}")
        for path in (source, target):
            if not path.is_file():
                raise OrchestratorError(f"input file {path} does not exist")
        try:
            splits[name] = read_parallel(source, target)
        except ValueError as exc:
            raise OrchestratorError(str(exc)) from None
    manifest = _build(args, lambda folder: prepare_translation(
        splits, folder, args.source_lang, args.target_lang, args.lowercase, args.min_freq,
        args.max_vocab, args.samples_per_shard, subword=args.subword,
        subword_vocab_size=args.subword_vocab_size, subword_joint=args.subword_joint,
    ))
    for name, info in manifest.splits.items():
        print(f"{name}: {info.samples} sentence pairs, {len(info.shards)} shards")
    print(f"wrote {args.out / 'dataset.json'}")
    return 0



@_out_checked_first
def _prepare_captions(args: argparse.Namespace) -> int:
    from orchestrator.datasets.caption_sources import read_coco_captions, read_flickr_captions

    if not args.images.is_dir():
        raise OrchestratorError(f"image folder {args.images} does not exist")
    items = []
    for path in args.captions:
        coco = args.format == "coco" or (args.format == "auto" and path.suffix == ".json")
        reader = read_coco_captions if coco else read_flickr_captions
        items += _read_captions(reader, path, args.images)
    return _write(args, items, "image_captioning", None, {"media": "image"})



@_out_checked_first
def _prepare_video(args: argparse.Namespace) -> int:
    from orchestrator.datasets.caption_sources import read_video_csv, read_video_json
    from orchestrator.datasets.video_shards import frame_fields, mp4_fields, readable_clips

    if not args.videos.is_dir():
        raise OrchestratorError(f"video folder {args.videos} does not exist")
    reader = read_video_json if args.captions.suffix == ".json" else read_video_csv
    items = _read_captions(reader, args.captions, args.videos)
    try:
        items = readable_clips(items, args.skip_unreadable)
    except ValueError as exc:
        raise OrchestratorError(str(exc)) from None
    if args.frames:
        media, text = frame_fields(args.frames, args.frame_size), {"media": "frames"}
    else:
        media, text = mp4_fields, {"media": "mp4"}
    return _write(args, items, "video_captioning", media, text)



def _read_captions(
    reader: Callable[[Path, Path], list[Any]], path: Path, folder: Path
) -> list[Any]:
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
    except ValueError as exc:
        raise OrchestratorError(str(exc)) from None
    options = {"media": media} if media else {}
    manifest = _build(args, lambda folder: prepare_captions(
        splits, folder, task, min_freq=args.min_freq, max_vocab=args.max_vocab,
        samples_per_shard=args.samples_per_shard, text=text, **options,
    ))
    for name, info in manifest.splits.items():
        print(f"{name}: {info.samples} items, {info.tokens} caption words, "
              f"{len(info.shards)} shards")
    print(f"wrote {args.out / 'dataset.json'}")
    return 0


@_out_checked_first
def _prepare_frame_labels(args: argparse.Namespace) -> int:
    from orchestrator.datasets.caption_shards import split_items
    from orchestrator.datasets.frame_label_shards import prepare_frame_labels, read_frame_labels

    if not args.videos.is_dir():
        raise OrchestratorError(f"video folder {args.videos} does not exist")
    try:
        clips = read_frame_labels(args.videos)
        splits = split_items(clips, args.val_fraction, args.test_fraction, args.seed)
    except ValueError as exc:
        raise OrchestratorError(str(exc)) from None
    manifest = _build(args, lambda folder: prepare_frame_labels(
        splits, folder, samples_per_shard=args.samples_per_shard))
    for name, info in manifest.splits.items():
        print(f"{name}: {info.samples} clips, {info.tokens} labelled frames, "
              f"{len(info.shards)} shards")
    print(f"wrote {args.out / 'dataset.json'} (labels: {', '.join(manifest.labels or [])})")
    return 0

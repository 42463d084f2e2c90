"""The `orchestrator` command line: argparse subcommands over the library functions.

Errors a user can fix print as one line (`error: ...`, exit 2); `--debug` shows the
traceback instead.
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from orchestrator.caption_cli import register_caption_commands
from orchestrator.errors import OrchestratorError
from orchestrator.k8s import register_k8s_commands


def main(argv: Sequence[str] | None = None) -> int:
    parser = _build_parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "handler"):
        parser.print_help()
        return 2
    try:
        return args.handler(args) or 0
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - the one place errors become messages
        if args.debug:
            traceback.print_exc()
        print(f"error: {_one_line(exc)}", file=sys.stderr)
        return 2 if _is_user_error(exc) else 1


def _is_user_error(exc: Exception) -> bool:
    from orchestrator.datasets.manifest import DatasetError
    from orchestrator.tuning.sweep_config import SweepError

    return isinstance(exc, OrchestratorError | DatasetError | SweepError)


def _one_line(exc: Exception) -> str:
    text = str(exc).strip() or type(exc).__name__
    if not _is_user_error(exc):
        text = f"{type(exc).__name__}: {text} (rerun with --debug for the traceback)"
    return " ".join(text.split())


def _build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--debug", action="store_true", help="show tracebacks")
    parser = argparse.ArgumentParser(
        prog="orchestrator", parents=[common],
        description="Train, sweep and compare recurrent sequence models on Ray and MLflow.",
    )
    commands = parser.add_subparsers(title="commands")

    launch = commands.add_parser(
        "launch", parents=[common], help="one training run",
        description="Train, validate and test one model. With no CONFIG, the quickstart: a "
        "character LSTM on generated sample text, 2 Ray workers, a local MLflow store.",
    )
    launch.add_argument(
        "items", nargs="*", metavar="CONFIG|key=value",
        help="a YAML config file and/or dotted overrides such as model.cell=gru",
    )
    launch.add_argument(
        "--address",
        help="Ray cluster: auto (a `ray start` cluster), HOST:PORT, ray://HOST:10001 (client), "
        "or http://HOST:8265 (submit as a Ray job); default: a local instance",
    )
    launch.set_defaults(handler=_launch)

    sweep = commands.add_parser(
        "sweep", parents=[common], help="a Ray Tune sweep with a report",
        description="Train one model per point of the sweep's search space (scheduler: ASHA "
        "by default), decode each at every evaluation setting, track a parent MLflow run "
        "with a child per trial, and write report.html/report.md into the sweep folder.",
    )
    sweep.add_argument("sweep_file", nargs="?", metavar="SWEEP.yaml")
    sweep.add_argument("--resume", metavar="DIR",
                       help="continue an interrupted sweep from its folder")
    sweep.add_argument("--address", help="Ray cluster address (default: a local instance)")
    sweep.set_defaults(handler=_sweep)

    report = commands.add_parser(
        "report", parents=[common], help="write a sweep's HTML and Markdown report",
    )
    report.add_argument("sweep_dir", metavar="SWEEP_DIR")
    report.set_defaults(handler=_report)

    evaluate = commands.add_parser(
        "eval", parents=[common], help="score a checkpoint again (new beam sizes, another split)",
        description="Test (or validate) a checkpoint with the experiment config it carries; "
        "overrides change it, e.g. eval.beam_sizes=[1,5,10] or data.path=OTHER_DATASET.",
    )
    evaluate.add_argument("checkpoint", help="a .ckpt file or a Ray checkpoint folder")
    evaluate.add_argument(
        "items", nargs="*", metavar="CONFIG|key=value",
        help="overrides of the config the checkpoint carries; a config file replaces it "
        "(for checkpoints that carry none: MLflow keeps each run's config.yaml)",
    )
    evaluate.add_argument("--split", choices=["test", "val"], default="test")
    evaluate.add_argument("--log", action="store_true",
                          help="also log to a new MLflow run (the config's tracking store)")
    evaluate.set_defaults(handler=_evaluate)

    ui = commands.add_parser(
        "ui", parents=[common], help="open the MLflow UI on the configured store"
    )
    ui.add_argument("items", nargs="*", metavar="CONFIG|key=value")
    ui.add_argument("--port", type=int, default=5000)
    ui.add_argument("--host", default="127.0.0.1")
    ui.set_defaults(handler=_ui)

    generate = commands.add_parser(
        "generate", parents=[common], help="sample text from a language-model checkpoint"
    )
    generate.add_argument("checkpoint", help="a .ckpt file or a Ray checkpoint folder")
    generate.add_argument("--prompt", default="the ")
    generate.add_argument("--length", type=int, default=200)
    generate.add_argument("--temperature", type=float, default=0.8)
    generate.add_argument("--seed", type=int, default=0)
    generate.set_defaults(handler=_generate)

    classify = commands.add_parser(
        "classify", parents=[common], help="label sentences (one per line on stdin)"
    )
    classify.add_argument("checkpoint", help="a sentiment .ckpt file or Ray checkpoint folder")
    classify.set_defaults(handler=_classify)

    translate = commands.add_parser(
        "translate", parents=[common], help="translate sentences (stdin or --input FILE)"
    )
    translate.add_argument("checkpoint", help="a translation .ckpt file or Ray checkpoint folder")
    translate.add_argument("--beam-size", type=int, default=5)
    translate.add_argument("--input", type=Path, help="one sentence a line (default: stdin)")
    translate.set_defaults(handler=_translate)

    register_k8s_commands(commands, common)

    data = commands.add_parser("data", parents=[common], help="prepare and check datasets")
    data_commands = data.add_subparsers(title="data commands")
    verify = data_commands.add_parser(
        "verify", parents=[common], help="check a local dataset's files against dataset.json"
    )
    verify.add_argument("path", help="a dataset folder")
    verify.set_defaults(handler=_verify)
    prepare = data_commands.add_parser(
        "prepare", parents=[common], help="raw data -> WebDataset shards + dataset.json"
    )
    kinds = prepare.add_subparsers(title="kinds")
    text = kinds.add_parser(
        "text", parents=[common], help="text files for language modelling",
        description="Either --input FILE (split by fractions, contiguous) or --train/--val/--test.",
    )
    text.add_argument("--input", type=Path, help="one text file to split into train/val/test")
    text.add_argument("--val-fraction", type=float, default=0.05)
    text.add_argument("--test-fraction", type=float, default=0.05)
    text.add_argument("--train", type=Path)
    text.add_argument("--val", type=Path)
    text.add_argument("--test", type=Path)
    text.add_argument("--out", type=Path, required=True, help="output folder")
    text.add_argument("--level", choices=["char", "word"], default="char")
    text.add_argument("--sample-tokens", type=int, default=1024,
                      help="tokens per sample (a contiguous segment of text)")
    text.add_argument("--samples-per-shard", type=int, default=64)
    text.add_argument("--min-freq", type=int, default=1)
    text.add_argument("--max-vocab", type=int, default=None)
    text.set_defaults(handler=_prepare_text)

    labelled = kinds.add_parser(
        "classification", parents=[common], help="labelled sentences for classification",
        description="SST `stsa.*` files (`label sentence` per line) or SST parse trees.",
    )
    labelled.add_argument("--train", type=Path, required=True)
    labelled.add_argument("--val", type=Path)
    labelled.add_argument("--test", type=Path)
    labelled.add_argument("--out", type=Path, required=True, help="output folder")
    labelled.add_argument("--format", choices=["lines", "trees"], default="lines",
                          help="`label sentence` lines, or SST trees (root label)")
    labelled.add_argument("--labels", choices=["fine", "binary"], default="fine",
                          help="trees: 5 classes, or 2 with neutral dropped")
    labelled.add_argument("--keep-case", action="store_true", help="do not lower-case")
    labelled.add_argument("--min-freq", type=int, default=1)
    labelled.add_argument("--max-vocab", type=int, default=None)
    labelled.set_defaults(handler=_prepare_classification)

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
    parallel.add_argument("--out", type=Path, required=True, help="output folder")
    parallel.add_argument("--lowercase", action="store_true")
    parallel.add_argument("--min-freq", type=int, default=2)
    parallel.add_argument("--max-vocab", type=int, default=None)
    parallel.add_argument("--samples-per-shard", type=int, default=5000)
    parallel.add_argument("--subword", choices=["bpe", "unigram"],
                          help="sentencepiece subwords instead of Moses words")
    parallel.add_argument("--subword-vocab-size", type=int, default=8000)
    parallel.set_defaults(handler=_prepare_translation)
    register_caption_commands(commands, kinds, common)
    return parser


def _split_items(items: list[str]) -> tuple[str | None, list[str]]:
    overrides = [item for item in items if "=" in item]
    paths = [item for item in items if "=" not in item]
    for item in paths:
        if not item.endswith((".yaml", ".yml")) and not Path(item).is_file():
            raise OrchestratorError(
                f"{item!r} is neither a config file nor a key=value override "
                "(e.g. model.cell=gru)"
            )
    if len(paths) > 1:
        raise OrchestratorError(
            f"expected at most one config file, got {', '.join(paths)}; "
            "overrides look like key=value"
        )
    return (paths[0] if paths else None), overrides


def _launch(args: argparse.Namespace) -> int:
    from orchestrator.config import load_config

    path, overrides = _split_items(args.items)
    if args.address and args.address.startswith(("http://", "https://", "ray://")):
        # A Ray Jobs API or client address: the run goes to the cluster as a job.
        from orchestrator.remote import launch_remote

        return launch_remote(load_config(path, overrides), args.address)
    if args.address:
        overrides.append(f"ray.address={args.address}")
    config = load_config(path, overrides)

    from orchestrator.launch import launch, summary

    print(summary(launch(config)))
    return 0


def _sweep(args: argparse.Namespace) -> int:
    if bool(args.sweep_file) == bool(args.resume):
        raise OrchestratorError("give a sweep file, or --resume DIR to continue a sweep")
    from orchestrator.sweep import sweep

    outcome = sweep(args.sweep_file, resume=args.resume, address=args.address)
    if not outcome.finished:
        print(f"sweep interrupted; continue it with: orchestrator sweep --resume "
              f"{outcome.folder}", file=sys.stderr)
        return 130
    print(f"sweep finished: {outcome.folder}\nreport: {outcome.report_html}\n"
          f"MLflow parent run: {outcome.parent_run_id}")
    return 0


def _report(args: argparse.Namespace) -> int:
    from orchestrator.tuning.report import write_report

    written = write_report(Path(args.sweep_dir).resolve())
    print(f"report: {written.html}\nsummary: {written.markdown}")
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    from orchestrator.evaluate import evaluate, metrics_table

    path, overrides = _split_items(args.items)
    result = evaluate(args.checkpoint, overrides, args.split, args.log, path)
    print(metrics_table(result.metrics))
    if result.run_id:
        print(f"MLflow run: {result.run_id}")
    return 0


def _ui(args: argparse.Namespace) -> int:
    from orchestrator.config import load_config
    from orchestrator.tracking import artifact_root, resolve_tracking_uri

    path, overrides = _split_items(args.items)
    uri = resolve_tracking_uri(load_config(path, overrides).tracking)
    command = [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", uri,
               "--host", args.host, "--port", str(args.port)]
    if artifact_root(uri):
        command += ["--default-artifact-root", artifact_root(uri)]
    print(f"MLflow UI on http://{args.host}:{args.port} for {uri} (Ctrl-C stops it)", flush=True)
    os.execv(sys.executable, command)  # become the UI, so signals reach it directly
    return 0


def _generate(args: argparse.Namespace) -> int:
    from orchestrator.lightning_modules.language_model import LanguageModelTask

    module = _load_checkpoint(args.checkpoint, LanguageModelTask)
    print(module.generate_text(args.prompt, args.length, args.temperature, seed=args.seed))
    return 0


def _load_checkpoint(path: str, module_class: type) -> Any:
    from orchestrator.launch import checkpoint_file

    return module_class.load_from_checkpoint(checkpoint_file(path), map_location="cpu")


def _classify(args: argparse.Namespace) -> int:
    from orchestrator.lightning_modules.sentiment import SentimentTask

    module = _load_checkpoint(args.checkpoint, SentimentTask)
    sentences = [line.strip() for line in sys.stdin if line.strip()]
    for start in range(0, len(sentences), 256):
        chunk = sentences[start : start + 256]
        for sentence, label in zip(chunk, module.classify(chunk), strict=True):
            print(f"{label}\t{sentence}")
    return 0


def _prepare_classification(args: argparse.Namespace) -> int:
    from orchestrator.datasets import classification_shards as shards

    def read(path: Path) -> list[tuple[str, str]]:
        if not path.is_file():
            raise OrchestratorError(f"input file {path} does not exist")
        if args.format == "trees":
            return shards.read_sst_trees(path, binary=args.labels == "binary")
        return shards.read_labelled_lines(path)

    named = {"train": args.train, "val": args.val, "test": args.test}
    splits = {name: read(path) for name, path in named.items() if path is not None}
    labels = None
    if args.format == "trees":
        labels = shards.SST_BINARY_LABELS if args.labels == "binary" else shards.SST_FINE_LABELS
    try:
        manifest = shards.prepare_classification(
            splits, args.out, labels, lowercase=not args.keep_case, min_freq=args.min_freq,
            max_vocab=args.max_vocab,
        )
    except ValueError as exc:
        raise OrchestratorError(str(exc)) from None
    for name, info in manifest.splits.items():
        print(f"{name}: {info.samples} sentences, {len(info.shards)} shards")
    print(f"wrote {args.out / 'dataset.json'} (labels: {', '.join(manifest.labels or [])})")
    return 0


def _translate(args: argparse.Namespace) -> int:
    from orchestrator.lightning_modules.translation import TranslationTask

    module = _load_checkpoint(args.checkpoint, TranslationTask)
    lines = (_read(args.input) if args.input else sys.stdin.read()).splitlines()
    sentences = [line.strip() for line in lines if line.strip()]
    for start in range(0, len(sentences), 64):
        for translation in module.translate(sentences[start : start + 64], args.beam_size):
            print(translation)
    return 0


def _prepare_translation(args: argparse.Namespace) -> int:
    from orchestrator.datasets.translation_shards import prepare_translation, read_parallel

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
    manifest = prepare_translation(
        splits, args.out, args.source_lang, args.target_lang, args.lowercase, args.min_freq,
        args.max_vocab, args.samples_per_shard, subword=args.subword,
        subword_vocab_size=args.subword_vocab_size,
    )
    for name, info in manifest.splits.items():
        print(f"{name}: {info.samples} sentence pairs, {len(info.shards)} shards")
    print(f"wrote {args.out / 'dataset.json'}")
    return 0


def _prepare_text(args: argparse.Namespace) -> int:
    from orchestrator.datasets.text_shards import prepare_text, split_by_fraction
    from orchestrator.datasets.tokenizer import Tokenizer

    if args.input is not None:
        splits = split_by_fraction(_read(args.input), args.val_fraction, args.test_fraction)
    elif args.train is not None:
        named = {"train": args.train, "val": args.val, "test": args.test}
        splits = {name: _read(path) for name, path in named.items() if path is not None}
    else:
        raise OrchestratorError("give --input FILE, or --train FILE [--val FILE --test FILE]")
    manifest = prepare_text(
        splits, args.out, args.level, args.sample_tokens, args.samples_per_shard,
        args.min_freq, args.max_vocab,
    )
    vocab = Tokenizer.from_json(manifest.read_file(manifest.vocab_file))
    for name, info in manifest.splits.items():
        print(f"{name}: {info.samples} samples, {info.tokens} tokens, {len(info.shards)} shards")
    print(f"wrote {args.out / 'dataset.json'} ({len(vocab)} {args.level} tokens in the vocabulary)")
    return 0


def _verify(args: argparse.Namespace) -> int:
    from orchestrator.datasets.manifest import check_local_shards, load_manifest, verify_checksums

    manifest = load_manifest(args.path)
    check_local_shards(manifest)
    corrupt = verify_checksums(manifest)
    if corrupt:
        raise OrchestratorError(
            f"{args.path}: {', '.join(corrupt)} differ from the checksums in dataset.json; "
            "prepare the dataset again"
        )
    print(f"{args.path}: all {len(manifest.checksums)} files match dataset.json")
    return 0


def _read(path: Path) -> str:
    if not path.is_file():
        raise OrchestratorError(f"input file {path} does not exist")
    return path.read_text(encoding="utf-8")


if __name__ == "__main__":
    sys.exit(main())

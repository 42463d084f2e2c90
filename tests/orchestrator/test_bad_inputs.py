"""Bad input, across every command: exit code 2, one line on stderr naming what is wrong
(the file, key or argument and its value), no traceback, and nothing started.

Each case is what a hostile but honest new user types. None of them may start Ray: the
table runs in one process, and the last test asserts Ray was never initialised.
"""

from __future__ import annotations

import io
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from orchestrator.cli import main
from orchestrator.cli.arguments import read_stdin
from orchestrator.errors import OrchestratorError

REPO = Path(__file__).resolve().parents[2]


def _files(folder: Path) -> dict[str, Path]:
    """The bad files the cases hand over, made once per test."""
    files = {
        "list.yaml": "- just\n- a list\n",
        "broken.yaml": "model:\n  cell: gru\n  hidden_size: [1,\n",
        "unknown_section.yaml": "modle:\n  cell: gru\n",
        "empty.txt": "",
        "labels.txt": "1 a fine film\nnot-a-label\n",
        "trees.txt": "(3 (2 a) (4 good)\n",
        "bad_label_tree.txt": "(3 (7 a) (4 good))\n",
        "pair.de": "ein satz\nzwei saetze\n",
        "pair.en": "one sentence\n",
        "not_a_ckpt.ckpt": "this is text, not a checkpoint\n",
        "captions.txt": "image,caption\nmissing.jpg,a cat\n",
        "sweep_int_uniform.yaml": "name: s\nspace:\n  model.hidden_size: {uniform: [16, 64]}\n",
        "sweep_typo.yaml": "name: s\nspace:\n  model.cel: {grid: [gru]}\n",
        "sweep_empty_grid.yaml": "name: s\nspace:\n  model.cell: {grid: []}\n",
        "sweep_zero_samples.yaml": "name: s\nnum_samples: 0\nspace:\n  model.cell: {grid: [gru]}\n",
        "sweep_bad_cell.yaml": "name: s\nspace:\n  model.cell: {grid: [gru, transformer]}\n",
    }
    for name, text in files.items():
        (folder / name).write_text(text)
    (folder / "latin1.txt").write_bytes("caf\xe9 au lait\n".encode("latin-1"))
    (folder / "images").mkdir()
    return {name: folder / name for name in [*files, "latin1.txt", "images"]}


# (argv given the files, what the one line must name)
Case = tuple[Callable[[dict[str, Path]], list[str]], str]
CASES: dict[str, Case] = {
    # launch: the config and its overrides
    "config file missing": (lambda f: ["launch", "nosuch.yaml"], "nosuch.yaml"),
    "config not a mapping": (lambda f: ["launch", str(f["list.yaml"])], "list.yaml"),
    "config not YAML": (lambda f: ["launch", str(f["broken.yaml"])], "broken.yaml"),
    "config unknown section": (lambda f: ["launch", str(f["unknown_section.yaml"])], "modle"),
    "unknown cell": (lambda f: ["launch", "model.cell=transformer"], "model.cell"),
    "misspelled key": (lambda f: ["launch", "model.celll=gru"], "model.cell"),
    "hidden size 0": (lambda f: ["launch", "model.hidden_size=0"], "model.hidden_size"),
    "lr nan": (lambda f: ["launch", "optim.lr=nan"], "optim.lr"),
    "lr inf": (lambda f: ["launch", "optim.lr=inf"], "optim.lr"),
    "clip negative": (lambda f: ["launch", "optim.clip=-1"], "optim.clip"),
    "dropout above 1": (lambda f: ["launch", "model.dropout=1.5"], "model.dropout"),
    "batch size negative": (lambda f: ["launch", "data.batch_size=-1"], "data.batch_size"),
    "zero epochs": (lambda f: ["launch", "train.max_epochs=0"], "train.max_epochs"),
    "zero workers": (lambda f: ["launch", "ray.num_workers=0"], "ray.num_workers"),
    "beam size 0": (lambda f: ["launch", "eval.beam_sizes=[0]"], "beam_sizes"),
    "unk banned and replaced": (lambda f: ["launch", "task=translation", "eval.ban_unk=true",
                                           "eval.replace_unk=true"], "eval.ban_unk=false"),
    "replace_unk for a language model": (lambda f: ["launch", "eval.replace_unk=true"],
                                         "eval.replace_unk"),
    "precision unknown": (lambda f: ["launch", "train.precision=8"], "train.precision"),
    "fp16 without GPU": (lambda f: ["launch", "train.precision=16-mixed"], "use_gpu"),
    "tracking uri not a URI": (lambda f: ["launch", "tracking.uri=mlflow.db"], "tracking.uri"),
    "two config files": (lambda f: ["launch", "a.yaml", "b.yaml"], "a.yaml"),
    # launch: pretrained weights and vectors, checked before anything starts
    "unknown encoder": (lambda f: ["launch", "task=image_captioning", "model.encoder=vgg"],
                        "model.encoder"),
    "encoder weights missing": (lambda f: ["launch", "task=image_captioning",
                                           "model.encoder=resnet18",
                                           "model.encoder_weights=nosuch.pth"], "nosuch.pth"),
    "encoder weights not a state dict": (
        lambda f: ["launch", "task=image_captioning", "model.encoder=resnet18",
                   f"model.encoder_weights={f['not_a_ckpt.ckpt']}"], "not_a_ckpt.ckpt"),
    "no packaged weights for resnet": (
        lambda f: ["launch", "task=image_captioning", "model.encoder=resnet34",
                   "model.encoder_weights=packaged"], "model.encoder_weights"),
    "vectors file missing": (lambda f: ["launch", "task=sentiment", "model.vectors=nosuch.txt"],
                             "nosuch.txt"),
    "vectors file malformed": (lambda f: ["launch", "task=sentiment",
                                          f"model.vectors={f['labels.txt']}"], "labels.txt"),
    "vectors for another task": (lambda f: ["launch", "model.vectors=glove-6b-50d"],
                                 "model.vectors"),
    "vectors of another size": (lambda f: ["launch", "task=sentiment",
                                           "model.vectors=glove-6b-50d",
                                           "model.embedding_dim=64"], "model.embedding_dim"),
    "address scheme": (lambda f: ["launch", "--address", "tcp://127.0.0.1:1"], "tcp://"),
    "address nobody answers": (lambda f: ["launch", "--address", "127.0.0.1:1",
                                          f"data.path={f['images'].parent / 'never-made'}"],
                               "ray.address=127.0.0.1:1"),
    "dataset missing": (lambda f: ["launch", "data.path=/nonexistent/ds", "data.sample=null"],
                        "/nonexistent/ds"),
    "dataset of another task": (lambda f: ["launch", "task=sentiment", "data.sample=grammar"],
                                "data.sample"),
    "storage under a file": (lambda f: ["launch", f"ray.storage_path={f['pair.de']}/runs"],
                             "ray.storage_path"),
    "tracking store under a file": (
        lambda f: ["launch", f"tracking.uri=sqlite:///{f['pair.de']}/mlflow.db"],
        "tracking.uri"),
    "resume a run nobody logged": (lambda f: ["launch", "--resume", "no-such-run"],
                                   "no-such-run"),
    "resume remote": (lambda f: ["launch", "--resume", "last", "--address",
                                 "http://127.0.0.1:1"], "--resume"),
    "unknown command": (lambda f: ["lunch"], "lunch"),
    # sweep
    "sweep file missing": (lambda f: ["sweep", "nosuch-sweep.yaml"], "nosuch-sweep.yaml"),
    "sweep uniform over an integer": (lambda f: ["sweep", str(f["sweep_int_uniform.yaml"])],
                                      "model.hidden_size"),
    "sweep misspelled axis": (lambda f: ["sweep", str(f["sweep_typo.yaml"])], "model.cel"),
    "sweep empty grid": (lambda f: ["sweep", str(f["sweep_empty_grid.yaml"])], "model.cell"),
    "sweep zero samples": (lambda f: ["sweep", str(f["sweep_zero_samples.yaml"])],
                           "num_samples"),
    "sweep axis value invalid": (lambda f: ["sweep", str(f["sweep_bad_cell.yaml"])],
                                 "transformer"),
    "sweep resume missing": (lambda f: ["sweep", "--resume", "/nonexistent/sweep"],
                             "/nonexistent/sweep"),
    # eval and inference
    "eval checkpoint missing": (lambda f: ["eval", "/nonexistent/last.ckpt"],
                                "/nonexistent/last.ckpt"),
    "eval text as checkpoint": (lambda f: ["eval", str(f["not_a_ckpt.ckpt"])],
                                "not_a_ckpt.ckpt"),
    "generate length 0": (lambda f: ["generate", "x.ckpt", "--length", "0"], "--length"),
    "generate temperature nan": (lambda f: ["generate", "x.ckpt", "--temperature", "nan"],
                                 "--temperature"),
    "translate beam 0": (lambda f: ["translate", "x.ckpt", "--beam-size", "0"], "--beam-size"),
    "translate input non-UTF-8": (
        lambda f: ["translate", str(f["not_a_ckpt.ckpt"]), "--input", str(f["latin1.txt"])],
        "latin1.txt"),
    "caption beam abc": (lambda f: ["caption", "x.ckpt", "a.jpg", "--beam-size", "abc"],
                         "--beam-size"),
    "ui port 0": (lambda f: ["ui", "--port", "0"], "--port"),
    # data prepare and verify
    "text input missing": (lambda f: ["data", "prepare", "text", "--input", "/nonexistent.txt",
                                      "--out", "/tmp/never-made"], "/nonexistent.txt"),
    "text input empty": (lambda f: ["data", "prepare", "text", "--input", str(f["empty.txt"]),
                                    "--out", str(f["empty.txt"].parent / "o1")], "empty.txt"),
    "text input non-UTF-8": (lambda f: ["data", "prepare", "text", "--input",
                                        str(f["latin1.txt"]), "--out",
                                        str(f["latin1.txt"].parent / "o2")], "latin1.txt"),
    "fraction above 1": (lambda f: ["data", "prepare", "text", "--input", "x.txt", "--out", "o",
                                    "--val-fraction", "1.5"], "--val-fraction"),
    "fraction negative": (lambda f: ["data", "prepare", "text", "--input", "x.txt", "--out",
                                     "o", "--test-fraction=-0.1"], "--test-fraction"),
    "samples per shard 0": (lambda f: ["data", "prepare", "text", "--input", "x.txt", "--out",
                                       "o", "--samples-per-shard", "0"], "--samples-per-shard"),
    "malformed label": (lambda f: ["data", "prepare", "classification", "--train",
                                   str(f["labels.txt"]), "--out",
                                   str(f["labels.txt"].parent / "o3")], "labels.txt"),
    "malformed tree": (lambda f: ["data", "prepare", "classification", "--format", "trees",
                                  "--train", str(f["trees.txt"]), "--out",
                                  str(f["trees.txt"].parent / "o4")], "trees.txt"),
    "phrases without trees": (lambda f: ["data", "prepare", "classification", "--phrases",
                                         "--train", str(f["labels.txt"]), "--out",
                                         str(f["labels.txt"].parent / "o4b")], "--phrases"),
    "tree node label out of range": (
        lambda f: ["data", "prepare", "classification", "--format", "trees", "--train",
                   str(f["bad_label_tree.txt"]), "--out", str(f["trees.txt"].parent / "o4c")],
        "bad_label_tree.txt:1"),
    "parallel files of different lengths": (
        lambda f: ["data", "prepare", "translation", "-s", "de", "-t", "en", "--train",
                   str(f["pair.de"].with_suffix("")), "--out", str(f["pair.de"].parent / "o5")],
        "pair"),
    "image folder missing": (lambda f: ["data", "prepare", "captions", "--captions",
                                        str(f["captions.txt"]), "--images", "/nonexistent/img",
                                        "--out", "o"], "/nonexistent/img"),
    "caption names a missing image": (
        lambda f: ["data", "prepare", "captions", "--captions", str(f["captions.txt"]),
                   "--images", str(f["images"]), "--out", str(f["images"].parent / "o6")],
        "missing.jpg"),
    "video frames 0": (lambda f: ["data", "prepare", "video", "--captions", "c.csv",
                                  "--videos", "v", "--out", "o", "--frames", "0"], "--frames"),
    "verify missing folder": (lambda f: ["data", "verify", "/nonexistent/dataset"],
                              "/nonexistent/dataset"),
    # k8s
    "k8s unknown profile": (lambda f: ["k8s", "render", "--profile", "tpu"], "--profile"),
    "k8s bad override": (lambda f: ["k8s", "render", str(REPO / "configs" / "quickstart.yaml"),
                                    "ray.num_workers"], "ray.num_workers"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_input_is_one_line_naming_it(case: str, tmp_path: Path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # whatever a case writes by mistake lands here
    argv, named = CASES[case]
    assert run_cli(argv(_files(tmp_path))) == 2
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("error: ") and "Traceback" not in err
    assert named in lines[0], lines[0]
    import ray

    assert not ray.is_initialized(), "a bad input started Ray"
    assert not list(tmp_path.glob("**/dataset.json")), "a bad input generated data"
    assert not (tmp_path / "mlflow.db").exists(), "a bad input created an MLflow store"


def run_cli(argv: list[str]) -> int | str | None:
    """The exit code, whether main returned it or argparse exited (argument types and
    choices are argparse's, which exits itself, with one line too)."""
    try:
        return main(argv)
    except SystemExit as exc:
        return exc.code


def test_binary_stdin_is_one_line_naming_the_line(monkeypatch):
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"fine\n\xff\xfe\x00")))
    with pytest.raises(OrchestratorError, match=r"standard input is not UTF-8 text \(line 2"):
        read_stdin()

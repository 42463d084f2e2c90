"""Parsing the command line: key=value items and input files may come before or after a
command's options."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.cli import build_parser
from orchestrator.cli.arguments import parse_command_line


def parsed(*argv: str):
    return parse_command_line(build_parser(), list(argv))


def test_items_after_an_option_join_the_items_in_order():
    args = parsed("eval", "run.ckpt", "--split", "val", "data.path=other", "eval.beam_sizes=[5]")
    assert (args.checkpoint, args.split) == ("run.ckpt", "val")
    assert args.items == ["data.path=other", "eval.beam_sizes=[5]"]
    args = parsed("launch", "exp.yaml", "model.cell=gru", "--debug", "optim.lr=0.01")
    assert args.debug and args.items == ["exp.yaml", "model.cell=gru", "optim.lr=0.01"]


def test_a_k8s_command_takes_its_overrides_after_an_option():
    args = parsed("k8s", "render", "exp.yaml", "--profile", "cpu-dev", "ray.num_workers=4")
    assert args.overrides == ["ray.num_workers=4"]


def test_input_files_after_an_option_join_the_files_as_paths():
    args = parsed("k8s", "validate", "a.yaml", "--crds", "crds", "b.yaml")
    assert (args.files, args.crds) == ([Path("a.yaml"), Path("b.yaml")], Path("crds"))
    args = parsed("caption", "run.ckpt", "a.jpg", "--beam-size", "3", "b.jpg")
    assert args.files == [Path("a.jpg"), Path("b.jpg")]


@pytest.mark.parametrize("argv", [
    ("eval", "run.ckpt", "--split", "val", "--splt", "test"),  # a misspelled option
    ("k8s", "status", "job", "extra"),                          # a command without items
])
def test_what_is_left_over_is_refused_in_one_line(argv, capsys):
    with pytest.raises(SystemExit) as stopped:
        parsed(*argv)
    assert stopped.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: orchestrator: unrecognized arguments:") and "\n" not in err
    assert argv[-1] in err

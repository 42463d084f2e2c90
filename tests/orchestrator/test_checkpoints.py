"""Checkpoints a user hands over are data: every command that loads one reads it
weights-only, refuses a file that would run code (the payload never runs), and says which
task a checkpoint of the wrong task holds."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from orchestrator.cli import main
from orchestrator.worker.tasks import load_task_module


class Payload:
    """Unpickling this opens (creates) `marker`: code a checkpoint must never run."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return open, (str(self.marker), "w")


@pytest.fixture
def payload(tmp_path) -> tuple[Path, Path]:
    marker = tmp_path / "payload-ran"
    path = tmp_path / "evil.ckpt"
    torch.save({"state_dict": {}, "hyper_parameters": {}, "trap": Payload(marker)}, path)
    return path, marker


def test_the_payload_is_real_it_runs_when_loaded_with_pickle(payload):
    path, marker = payload
    torch.load(path, weights_only=False)  # what the project must never do
    assert marker.exists()


@pytest.mark.parametrize("command", [
    ["eval"], ["generate"], ["classify"], ["translate", "--input", "{input}"],
    ["caption", "{checkpoint}", "{input}"],
])
def test_every_loading_command_refuses_the_payload_without_running_it(
        payload, command, tmp_path, capsys):
    path, marker = payload
    sentences = tmp_path / "in.txt"
    sentences.write_text("ein satz\n")
    argv = [part.format(checkpoint=path, input=sentences) for part in command]
    if "{checkpoint}" not in command:
        argv.insert(1, str(path))
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert f"checkpoint {path} was not loaded" in err and len(err.strip().splitlines()) == 1
    assert not marker.exists()


def test_a_checkpoint_of_another_task_says_which_task_it_holds(language_model, capsys):
    assert main(["classify", str(language_model)]) == 2
    assert "holds a language_model; this command needs sentiment" in capsys.readouterr().err


def test_a_real_checkpoint_loads_its_weights_and_generates(language_model, capsys):
    module = load_task_module(language_model, ["language_model"])
    saved = torch.load(language_model, weights_only=True)["state_dict"]
    assert all(torch.equal(value, saved[key]) for key, value in module.state_dict().items())
    assert main(["generate", str(language_model), "--prompt", "ab", "--length", "5"]) == 0
    assert capsys.readouterr().out.startswith("ab")


def test_a_checkpoint_of_an_older_version_is_one_line_naming_what_does_not_fit(
        language_model, tmp_path, capsys):
    stored = torch.load(language_model, weights_only=True)
    stored["hyper_parameters"]["search"] = {"beam_sizes": [1]}  # a setting renamed since
    old = tmp_path / "old.ckpt"
    torch.save(stored, old)
    assert main(["generate", str(old)]) == 2
    err = capsys.readouterr().err
    assert "does not fit this version's language_model model" in err and "search" in err

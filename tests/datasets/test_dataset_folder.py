"""`dataset_folder`: a dataset appears at its path whole, or not at all."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.datasets.dataset_folder import build_dataset, building
from orchestrator.datasets.manifest import MANIFEST_NAME, DatasetError, load_manifest
from orchestrator.datasets.synthetic import markov_text
from orchestrator.datasets.text_shards import prepare_text, split_by_fraction
from orchestrator.datasets.verification import VERIFIED_CACHE, damaged_files
from orchestrator.errors import OrchestratorError
from orchestrator.inputs import ensure_dataset
from tests.small_runs import small_config


def write_markov(folder: Path):
    return prepare_text(split_by_fraction(markov_text(4_000, seed=1), 0.1, 0.1), folder,
                        sample_tokens=200, samples_per_shard=5, show_progress=False)


def hidden(parent: Path) -> list[str]:
    return sorted(item.name for item in parent.iterdir() if item.name.startswith("."))


def test_the_manifest_points_at_the_target_and_the_writers_hashes_are_remembered(tmp_path):
    manifest = build_dataset(tmp_path / "data", write_markov)
    assert manifest.location == str(tmp_path / "data")
    assert load_manifest(str(tmp_path / "data")).checksums == manifest.checksums
    assert (tmp_path / "data" / VERIFIED_CACHE).is_file()
    assert damaged_files(manifest) == []
    assert hidden(tmp_path) == []


def test_an_empty_folder_is_filled_and_a_file_is_refused(tmp_path):
    (tmp_path / "empty").mkdir()
    build_dataset(tmp_path / "empty", write_markov)
    assert (tmp_path / "empty" / MANIFEST_NAME).is_file()
    (tmp_path / "file").write_text("x")
    with pytest.raises(DatasetError, match="is a file"):
        build_dataset(tmp_path / "file", write_markov)


def test_a_failure_removes_the_partial_folder_and_creates_nothing(tmp_path):
    def failing(folder: Path):
        write_markov(folder)
        raise ValueError("found late")

    with pytest.raises(ValueError, match="found late"):
        build_dataset(tmp_path / "data", failing)
    assert sorted(item.name for item in tmp_path.iterdir()) == []


def test_a_dataset_that_appears_meanwhile_is_not_replaced_without_overwrite(tmp_path):
    target = tmp_path / "data"
    with pytest.raises(DatasetError, match="--overwrite"), building(target) as folder:
        write_markov(folder)
        build_dataset(target, write_markov)  # another writer finishes first
    assert damaged_files(load_manifest(str(target)), use_cache=False) == []
    assert hidden(tmp_path) == []


def test_an_interrupted_sample_generation_leaves_nothing_a_run_could_take(tmp_path):
    """The sample generators write through the same helper: stopped halfway (a real
    KeyboardInterrupt after real shards), data/sample-* does not exist; the next run
    generates the whole sample."""
    target = tmp_path / "sample-grammar"

    def interrupted(folder: Path):
        write_markov(folder)
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        build_dataset(target, interrupted)
    assert not target.exists() and hidden(tmp_path) == []
    config = small_config(target, tmp_path, "data.sample=grammar")
    manifest = ensure_dataset(config)
    assert manifest.location == str(target) and hidden(tmp_path) == []
    assert damaged_files(manifest, use_cache=False) == []


def test_a_sample_is_never_generated_over_files_without_a_manifest(tmp_path):
    folder = tmp_path / "half"
    folder.mkdir()
    (folder / "train-000000.tar").write_bytes(b"left by an older version")
    with pytest.raises(OrchestratorError, match="holds files but no dataset.json"):
        ensure_dataset(small_config(folder, tmp_path, "data.sample=grammar"))
    assert [item.name for item in folder.iterdir()] == ["train-000000.tar"]

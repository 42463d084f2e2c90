"""Datasets are never lost, and a damaged one fails before anything starts.

`data prepare` writes beside --out and moves the result in when complete: an existing dataset
is refused without --overwrite, and a failure with it leaves the old one as it was. A launch
checks sizes and (cached) checksums before Ray or MLflow see the run; `data verify` hashes
everything, which is what catches content forged with the same size and mtime.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from orchestrator.cli import main
from orchestrator.datasets.dataset_folder import build_dataset
from orchestrator.datasets.manifest import MANIFEST_NAME, load_manifest
from orchestrator.datasets.synthetic import grammar_text, markov_text
from orchestrator.datasets.text_shards import prepare_text, split_by_fraction
from orchestrator.datasets.verification import VERIFIED_CACHE
from orchestrator.errors import OrchestratorError
from orchestrator.inputs import ensure_dataset
from tests.small_runs import small_config, small_overrides


def prepare(corpus: Path, out: Path, *extra: str) -> int:
    """`orchestrator data prepare text` of a small corpus into `out`, several shards a split."""
    return main(["data", "prepare", "text", "--input", str(corpus), "--out", str(out),
                 "--sample-tokens", "97", "--samples-per-shard", "5", *extra])


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file's bytes, to show a dataset is byte-for-byte what it was."""
    return {item.name: item.read_bytes() for item in sorted(folder.iterdir()) if item.is_file()}


def leftovers(out: Path) -> list[str]:
    """Temporary folders beside `out` (partial new datasets, old ones set aside)."""
    return [item.name for item in out.parent.iterdir() if item.name.startswith(f".{out.name}.")]


@pytest.fixture
def dataset(tmp_path: Path) -> Path:
    (tmp_path / "grammar.txt").write_text(grammar_text(6_000, seed=4))
    out = tmp_path / "data"
    assert prepare(tmp_path / "grammar.txt", out) == 0
    return out


def one_error_line(capsys: pytest.CaptureFixture[str], progress: bool = False) -> str:
    """The one line the CLI printed; with `progress`, after the writer's progress bars."""
    lines = capsys.readouterr().err.strip().splitlines()
    if progress:
        lines = [line for line in lines if not line.endswith(("/s]", "?item/s]"))]
    assert len(lines) == 1 and lines[0].startswith("error: "), lines
    return lines[0]


def test_a_prepared_dataset_records_sizes_and_points_at_its_folder(tmp_path, capsys):
    (tmp_path / "grammar.txt").write_text(grammar_text(3_000, seed=4))
    out = tmp_path / "new" / "data"  # parents are made
    assert prepare(tmp_path / "grammar.txt", out) == 0
    assert f"wrote {out / MANIFEST_NAME}" in capsys.readouterr().out
    manifest = load_manifest(str(out))
    assert set(manifest.sizes) == set(manifest.checksums)
    assert all(manifest.sizes[name] == (out / name).stat().st_size for name in manifest.sizes)
    assert leftovers(out) == []


def test_prepare_onto_an_existing_dataset_is_refused(dataset, tmp_path, capsys):
    before = snapshot(dataset)
    (tmp_path / "markov.txt").write_text(markov_text(6_000, seed=1))
    capsys.readouterr()
    assert prepare(tmp_path / "markov.txt", dataset) == 2
    line = one_error_line(capsys)
    assert str(dataset) in line and "--overwrite" in line
    assert snapshot(dataset) == before
    assert leftovers(dataset) == []


def test_a_non_empty_folder_without_a_manifest_is_refused_too(tmp_path, capsys):
    (tmp_path / "grammar.txt").write_text(grammar_text(3_000, seed=4))
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "notes.txt").write_text("the user's")
    assert prepare(tmp_path / "grammar.txt", folder) == 2
    assert "--overwrite" in one_error_line(capsys)
    assert snapshot(folder) == {"notes.txt": b"the user's"}


def test_overwrite_replaces_the_dataset_once_the_new_one_is_complete(dataset, tmp_path, capsys):
    old = load_manifest(str(dataset)).checksums
    (tmp_path / "markov.txt").write_text(markov_text(6_000, seed=1))
    assert prepare(tmp_path / "markov.txt", dataset, "--overwrite") == 0
    new = load_manifest(str(dataset))
    assert new.checksums != old and new.location == str(dataset)
    assert main(["data", "verify", str(dataset)]) == 0
    assert leftovers(dataset) == []


def captioned_images(folder: Path, broken: str) -> Path:
    """A Flickr8k-style folder of 20 images whose captions name one `broken` file the shard
    writer refuses only when it reaches it (it is not a jpg or png): a late failure."""
    images = folder / "images"
    images.mkdir()
    rows = ["image,caption"]
    for number in range(20):
        name = broken if number == 19 else f"{number:02d}.jpg"
        (images / name).write_bytes(b"\xff\xd8 not really a jpeg " * 10)
        rows.append(f"{name},a red square number {number}")
    (folder / "captions.txt").write_text("\n".join(rows) + "\n")
    return folder / "captions.txt"


def test_a_failure_midway_with_overwrite_keeps_the_old_dataset(dataset, tmp_path, capsys):
    before = snapshot(dataset)
    captions = captioned_images(tmp_path, broken="19.gif")
    assert main(["data", "prepare", "captions", "--captions", str(captions),
                 "--images", str(tmp_path / "images"), "--out", str(dataset),
                 "--samples-per-shard", "2", "--overwrite"]) == 2
    assert "19.gif" in one_error_line(capsys, progress=True)
    assert snapshot(dataset) == before
    assert leftovers(dataset) == []
    assert main(["data", "verify", str(dataset)]) == 0


def test_ctrl_c_while_writing_keeps_the_old_dataset(dataset, tmp_path):
    """A real interrupt in the middle of writing real shards: nothing changes at --out."""
    before = snapshot(dataset)
    partial: list[Path] = []

    def interrupted(folder: Path):
        partial.append(folder)
        prepare_text(split_by_fraction(markov_text(6_000, seed=2), 0.1, 0.1), folder,
                     sample_tokens=97, samples_per_shard=5, show_progress=False)
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        build_dataset(dataset, interrupted, overwrite=True)
    assert partial and partial[0].parent == dataset.parent and not partial[0].exists()
    assert snapshot(dataset) == before
    assert leftovers(dataset) == []


def truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def test_a_truncated_shard_stops_launch_before_ray_or_mlflow_start(
    dataset, tmp_path, monkeypatch, capsys
):
    ray_tmp = tmp_path / "ray-tmp"
    monkeypatch.setenv("RAY_TMPDIR", str(ray_tmp))  # where a Ray session would appear
    monkeypatch.chdir(tmp_path)
    truncate(dataset / "train-000001.tar")
    workdir = tmp_path / "work"
    workdir.mkdir()
    capsys.readouterr()
    assert main(["launch", *small_overrides(dataset, workdir)]) == 2
    line = one_error_line(capsys)
    assert "train-000001.tar" in line and "orchestrator data prepare text" in line
    assert not ray_tmp.exists()
    assert "ray" not in sys.modules or not sys.modules["ray"].is_initialized()
    store = workdir / "mlflow.db"
    if store.exists():
        assert MlflowClient(f"sqlite:///{store}").search_runs(
            [e.experiment_id for e in MlflowClient(f"sqlite:///{store}").search_experiments()]
        ) == []


def forge_same_size_and_mtime(path: Path) -> None:
    """Different content, same length, same modification time: what the cache cannot see."""
    stat = path.stat()
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))


def test_checksums_are_hashed_once_and_data_verify_never_trusts_the_cache(dataset, tmp_path):
    config = small_config(dataset, tmp_path)
    cache = dataset / VERIFIED_CACHE
    cache.unlink()  # the writer's own record: start from a dataset nobody has checked
    ensure_dataset(config)
    first = cache.read_text()
    assert set(load_manifest(str(dataset)).checksums) <= set(json.loads(first))
    stamp = cache.stat().st_mtime_ns
    forge_same_size_and_mtime(dataset / "val-000000.tar")
    ensure_dataset(config)  # trusted by size and mtime: not hashed again, cache untouched
    assert cache.stat().st_mtime_ns == stamp and cache.read_text() == first
    assert main(["data", "verify", str(dataset)]) == 2  # the explicit check hashes it


def test_a_cache_entry_whose_mtime_changed_is_hashed_again(dataset, tmp_path):
    config = small_config(dataset, tmp_path)
    shard = dataset / "val-000000.tar"
    forge_same_size_and_mtime(shard)
    os.utime(shard, ns=(shard.stat().st_atime_ns, shard.stat().st_mtime_ns + 10**9))
    with pytest.raises(OrchestratorError, match="val-000000.tar .*sha256.*data prepare text"):
        ensure_dataset(config)


def test_a_folder_where_the_cache_cannot_be_written_is_still_checked(dataset, tmp_path):
    config = small_config(dataset, tmp_path)
    (dataset / VERIFIED_CACHE).unlink()
    (dataset / VERIFIED_CACHE).mkdir()  # writing the cache fails (root ignores chmod)
    ensure_dataset(config)
    truncate(dataset / "test-000000.tar")
    with pytest.raises(OrchestratorError, match="test-000000.tar"):
        ensure_dataset(config)


def test_data_verify_fails_on_a_manifest_without_checksums(dataset, capsys):
    manifest = load_manifest(str(dataset))
    manifest.checksums, manifest.sizes = {}, {}
    (dataset / MANIFEST_NAME).write_text(manifest.to_json())
    capsys.readouterr()
    assert main(["data", "verify", str(dataset)]) == 2
    assert "no checksums" in one_error_line(capsys)
    ensure_dataset(small_config(dataset, dataset.parent))  # a launch still takes it


def test_an_old_manifest_without_sizes_is_still_checked_by_checksum(dataset, tmp_path):
    manifest = load_manifest(str(dataset))
    manifest.sizes = {}
    (dataset / MANIFEST_NAME).write_text(manifest.to_json().replace('  "sizes": {},\n', ""))
    (dataset / VERIFIED_CACHE).unlink()
    assert "sizes" not in (dataset / MANIFEST_NAME).read_text()
    truncate(dataset / "train-000000.tar")
    with pytest.raises(OrchestratorError, match="train-000000.tar .*sha256"):
        ensure_dataset(small_config(dataset, tmp_path))


def test_a_one_line_corpus_is_split_by_characters_so_no_split_is_empty():
    """The Markov sample is one line: split by lines, val and test came out empty."""
    splits = split_by_fraction(markov_text(1_000, seed=4), 0.05, 0.05)
    assert {name: len(text) for name, text in splits.items()} == {
        "train": 900, "val": 50, "test": 50}
    by_lines = split_by_fraction("one\ntwo\nthree\nfour\n", 0.25, 0.25)
    assert by_lines == {"train": "one\ntwo\n", "val": "three\n", "test": "four\n"}


def test_a_dataset_with_an_empty_split_is_refused_before_anything_starts(tmp_path, capsys):
    splits = {"train": markov_text(3_000, seed=1), "val": "", "test": markov_text(500, seed=2)}
    prepare_text(splits, tmp_path / "empty-val", sample_tokens=97, show_progress=False)
    config = small_config(tmp_path / "empty-val", tmp_path)
    with pytest.raises(OrchestratorError, match="the 'val' split has no samples"):
        ensure_dataset(config)

"""Data the module tests share."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.cli import main
from orchestrator.datasets.synthetic_captions import write_shapes_folder


@pytest.fixture(scope="session")
def shape_captions(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Shards of 400 captioned shape images (10% val, 10% test), prepared by the CLI."""
    folder = tmp_path_factory.mktemp("shapes")
    captions = write_shapes_folder(folder / "raw", 400, seed=3)
    assert main(["data", "prepare", "captions", "--captions", str(captions), "--images",
                 str(folder / "raw" / "images"), "--out", str(folder / "shards"),
                 "--val-fraction", "0.1", "--test-fraction", "0.1"]) == 0
    return folder / "shards"

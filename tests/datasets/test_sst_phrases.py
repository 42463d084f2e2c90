"""SST phrase-level training data: every labelled node of a training tree, each distinct
phrase once; val and test keep whole sentences (as the SST literature evaluates)."""

from __future__ import annotations

import json
from pathlib import Path

import webdataset as wds

from orchestrator.cli import main
from orchestrator.datasets.classification_shards import read_sst_trees

TREE = "(3 (2 (2 The) (2 film)) (4 (3 (2 is) (4 great)) (2 .)))\n(1 (2 The) (0 awful))\n"


def test_every_labelled_node_of_a_tree_is_a_phrase(tmp_path: Path) -> None:
    trees = tmp_path / "trees.txt"
    trees.write_text(TREE)

    fine = read_sst_trees(trees, binary=False, phrases=True)

    assert fine == [
        ("neutral", "The"), ("neutral", "film"), ("neutral", "The film"), ("neutral", "is"),
        ("very positive", "great"), ("positive", "is great"), ("neutral", "."),
        ("very positive", "is great ."), ("positive", "The film is great ."),
        ("very negative", "awful"), ("negative", "The awful"),
    ]  # the second tree's "The" is the first's: kept once


def test_binary_phrases_drop_neutral_and_fold_the_rest(tmp_path: Path) -> None:
    trees = tmp_path / "trees.txt"
    trees.write_text(TREE)

    binary = read_sst_trees(trees, binary=True, phrases=True)

    assert binary == [
        ("positive", "great"), ("positive", "is great"), ("positive", "is great ."),
        ("positive", "The film is great ."), ("negative", "awful"), ("negative", "The awful"),
    ]
    assert read_sst_trees(trees, binary=True) == [  # without phrases: the roots only
        ("positive", "The film is great ."), ("negative", "The awful"),
    ]


def test_prepare_trains_on_phrases_and_validates_on_sentences(tmp_path: Path) -> None:
    trees = tmp_path / "trees.txt"
    trees.write_text(TREE)
    out = tmp_path / "sst"

    code = main(["data", "prepare", "classification", "--format", "trees", "--labels",
                 "binary", "--phrases", "--train", str(trees), "--val", str(trees),
                 "--out", str(out)])

    assert code == 0
    manifest = json.loads((out / "dataset.json").read_text())
    assert manifest["splits"]["train"]["samples"] == 6
    assert manifest["splits"]["val"]["samples"] == 2
    val = [sample["txt"] for sample in wds.WebDataset(
        str(out / manifest["splits"]["val"]["shards"][0]), shardshuffle=False).decode()]
    assert val == ["the film is great .", "the awful"]

"""Sentiment: SST readers, a bi-directional RNN that learns a first-word label that a
left-to-right plain RNN's last state cannot keep, and pretrained word vectors."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import pytorch_lightning as pl
import torch
from pytorch_lightning.loggers.logger import Logger

from orchestrator.cli import main
from orchestrator.config import ExperimentConfig
from orchestrator.datasets.classification_data import ClassificationDataModule
from orchestrator.datasets.classification_shards import (
    prepare_classification,
    read_labelled_lines,
    read_sst_trees,
)
from orchestrator.datasets.manifest import load_manifest
from orchestrator.datasets.synthetic import first_word_examples
from orchestrator.lightning_modules.rnn_classifier import RNNClassifier, RNNClassifierConfig
from orchestrator.lightning_modules.sentiment import SentimentTask
from orchestrator.worker.tasks import TASKS, load_task_module
from tests.models import settings

TREES = Path(__file__).parents[1] / "fixtures" / "sst_trees.txt"
OPTIM = {"optimizer": "adam", "lr": 5e-3, "weight_decay": 0.0, "clip": 1.0,
         "clip_mode": "norm", "lr_decay": 1.0, "lr_decay_start": 0}


def test_tree_root_labels_give_the_documented_counts():
    fine = read_sst_trees(TREES, binary=False)
    assert Counter(label for label, _ in fine) == {
        "very negative": 1, "negative": 1, "neutral": 1, "positive": 1, "very positive": 2,
    }
    assert fine[0] == ("very negative", "A dull mess .")
    binary = read_sst_trees(TREES, binary=True)  # neutral dropped, 0-1 and 3-4 folded
    assert Counter(label for label, _ in binary) == {"negative": 2, "positive": 3}


def test_stsa_lines_and_prepare_record_labels(tmp_path):
    lines = tmp_path / "stsa.binary.train"
    lines.write_text("1 a gorgeous film .\n0\tone long string of cliches .\n\n1 fine\n")
    rows = read_labelled_lines(lines)
    assert rows == [("1", "a gorgeous film ."), ("0", "one long string of cliches ."),
                    ("1", "fine")]
    assert main(["data", "prepare", "classification", "--train", str(lines), "--test",
                 str(lines), "--out", str(tmp_path / "out")]) == 0
    manifest = load_manifest(str(tmp_path / "out"))
    assert manifest.task == "sentiment"
    assert manifest.labels == ["0", "1"]
    assert manifest.splits["test"].samples == 3


@pytest.fixture(scope="module")
def first_word_data(tmp_path_factory) -> Path:
    rows = first_word_examples(3000, min_words=30, max_words=50, seed=5)
    out = tmp_path_factory.mktemp("first_word")
    prepare_classification({"train": rows[:2400], "val": rows[2400:]}, out,
                           samples_per_shard=400, show_progress=False)
    return out


def val_accuracy(data: Path, cell: str, bidirectional: bool, epochs: int) -> float:
    pl.seed_everything(0, verbose=False)
    datamodule = ClassificationDataModule(str(data), batch_size=32, num_workers=0)
    task = SentimentTask(
        model=settings(RNNClassifierConfig, cell=cell, embedding_dim=16, hidden_size=32,
                       num_layers=1, dropout=0.0, bidirectional=bidirectional, pooling="last"),
        optim=OPTIM, vocab=datamodule.tokenizer.tokens, labels=datamodule.labels,
    )
    trainer = pl.Trainer(max_epochs=epochs, accelerator="cpu", logger=False,
                         enable_progress_bar=False, enable_checkpointing=False,
                         enable_model_summary=False, gradient_clip_val=1.0,
                         num_sanity_val_steps=0)
    trainer.fit(task, datamodule=datamodule)
    return trainer.validate(task, datamodule=datamodule, verbose=False)[0]["val_accuracy"]


def test_direction_matters_for_a_label_set_by_the_first_word(first_word_data):
    bidirectional = val_accuracy(first_word_data, "lstm", bidirectional=True, epochs=3)
    left_to_right = val_accuracy(first_word_data, "rnn", bidirectional=False, epochs=3)
    assert bidirectional >= 0.95
    # 30-50 words of filler between the deciding word and the plain RNN's last state
    assert left_to_right <= bidirectional - 0.2, (left_to_right, bidirectional)


@pytest.mark.parametrize("pooling", ["last", "max", "mean"])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_padding_changes_nothing(pooling, bidirectional):
    model = RNNClassifier(RNNClassifierConfig(vocab_size=20, num_classes=3, **settings(
        RNNClassifierConfig, cell="gru", embedding_dim=8, hidden_size=8, dropout=0.0,
        bidirectional=bidirectional, pooling=pooling)))
    sentence = torch.tensor([[5, 6, 7]])
    padded = torch.tensor([[5, 6, 7, 0, 0, 0], [1, 2, 3, 4, 5, 6]])
    alone = model(sentence, torch.tensor([3]))
    in_batch = model(padded, torch.tensor([3, 6]))[:1]
    torch.testing.assert_close(alone, in_batch)


# Pretrained word vectors (`model.vectors`): read once when training builds the module.

VECTORS = {"good": [0.5, -1.0, 2.0], "bad": [-0.5, 1.0, -2.0], "film": [0.25, 0.25, 0.75]}


class KeptMetrics(Logger):
    """A logger that keeps what it is given, to see what would reach MLflow."""

    def __init__(self) -> None:
        super().__init__()
        self.metrics: list[tuple[dict[str, float], int | None]] = []

    name = "kept"
    version = "0"

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        self.metrics.append((dict(metrics), step))

    def log_hyperparams(self, params: Any, *args: Any, **kwargs: Any) -> None:
        pass


@pytest.fixture
def review_data(tmp_path) -> tuple[Path, Path]:
    """A tiny sentiment set and a GloVe file holding three of its four words."""
    rows = [("1", "good film"), ("0", "bad film"), ("1", "good good"), ("0", "bad dull")] * 4
    prepare_classification({"train": rows, "val": rows[:4]}, tmp_path / "data",
                           show_progress=False)
    vectors = tmp_path / "vectors.txt"
    vectors.write_text("".join(f"{w} {' '.join(map(str, v))}\n" for w, v in VECTORS.items()))
    return tmp_path / "data", vectors


def vector_config(data: Path, vectors: Path, **model: Any) -> ExperimentConfig:
    return ExperimentConfig(
        task="sentiment", data={"path": str(data), "batch_size": 4, "num_workers": 0},
        model={"cell": "gru", "embedding_dim": 3, "hidden_size": 4, "num_layers": 1,
               "dropout": 0.0, "vectors": str(vectors), **model},
        optim={"lr": 0.1},
    )


def one_step(task: SentimentTask, data: Path, logger: Logger | bool = False) -> pl.Trainer:
    trainer = pl.Trainer(max_steps=1, accelerator="cpu", logger=logger, limit_val_batches=0,
                         enable_progress_bar=False, enable_checkpointing=False,
                         enable_model_summary=False, num_sanity_val_steps=0)
    trainer.fit(task, datamodule=ClassificationDataModule(str(data), batch_size=4,
                                                          num_workers=0))
    return trainer


@pytest.mark.parametrize("freeze", [False, True])
def test_vectors_become_the_embedding_and_freezing_keeps_them(review_data, freeze):
    data, vectors = review_data
    config = vector_config(data, vectors, freeze_vectors=freeze)
    datamodule = TASKS["sentiment"].build_datamodule(config)
    task = TASKS["sentiment"].build_module(config, datamodule)
    vocab = datamodule.tokenizer.tokens
    embedding = task.model.embedding.weight
    for word, values in VECTORS.items():
        assert embedding[vocab.index(word)].tolist() == values
    assert str(task.vectors_coverage) == "3 of 4 words (75.0%)"  # `dull` is missing
    before = {name: p.detach().clone() for name, p in task.model.named_parameters()}
    logger = KeptMetrics()
    one_step(task, data, logger)
    after = dict(task.model.named_parameters())
    assert torch.equal(before["embedding.weight"], after["embedding.weight"]) == freeze
    assert not torch.equal(before["head.weight"], after["head.weight"])
    assert ({"vectors_coverage": 0.75, "vectors_found": 3.0, "vectors_vocabulary": 4.0},
            0) in logger.metrics


def test_an_embedding_dim_other_than_the_vectors_is_one_line(review_data):
    data, vectors = review_data
    config = vector_config(data, vectors, embedding_dim=8)
    with pytest.raises(ValueError) as caught:
        TASKS["sentiment"].build_module(config, TASKS["sentiment"].build_datamodule(config))
    assert str(caught.value) == (f"model.embedding_dim=8 but {vectors} has 3 dimensions; "
                                 "set model.embedding_dim=3")
    with pytest.raises(ValueError, match=r"^model.embedding_dim=8 but the vectors have 3 "):
        SentimentTask(model=settings(RNNClassifierConfig, embedding_dim=8), optim=OPTIM,
                      vocab=["<unk>", "a"], labels=["0", "1"],
                      pretrained_embedding=torch.zeros(2, 3))


def test_a_checkpoint_loads_without_the_vectors_file(review_data, tmp_path):
    data, vectors = review_data
    config = vector_config(data, vectors, freeze_vectors=True)
    task = TASKS["sentiment"].build_module(config, TASKS["sentiment"].build_datamodule(config))
    trainer = one_step(task, data)
    checkpoint = tmp_path / "trained.ckpt"
    trainer.save_checkpoint(checkpoint)
    vectors.unlink()  # eval on another machine: the vectors are not there
    loaded = load_task_module(checkpoint, ["sentiment"])
    assert "pretrained_embedding" not in loaded.hparams
    assert torch.equal(loaded.model.embedding.weight, task.model.embedding.weight)
    assert not loaded.model.embedding.weight.requires_grad
    assert loaded.classify(["good film"]) == task.classify(["good film"])

"""Translation: parallel shards, bucketed batches, and an attention model that learns the
date-rewriting task to BLEU >= 90, with BLEU equal to sacrebleu's on the same output."""

from __future__ import annotations

import copy
import csv
import io
import random
import statistics
from pathlib import Path

import pytest
import pytorch_lightning as pl
import sacrebleu
import torch
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from orchestrator.cli import main
from orchestrator.config import load_config
from orchestrator.datasets.batches import IGNORE_INDEX
from orchestrator.datasets.buckets import bucketed_batches, padding_share
from orchestrator.datasets.synthetic import date_pairs
from orchestrator.datasets.translation_data import Pair, TranslationDataModule
from orchestrator.errors import OrchestratorError
from orchestrator.lightning_modules.seq2seq import Seq2Seq, Seq2SeqConfig
from orchestrator.lightning_modules.translation import TranslationTask
from tests.models import settings

OPTIM = {"optimizer": "adam", "lr": 3e-3, "weight_decay": 0.0, "clip": 1.0,
         "clip_mode": "norm", "lr_decay": 1.0, "lr_decay_start": 0}
SEARCH = {"beam_sizes": [1, 3], "length_penalty": "gnmt", "alpha": 0.6, "max_length": 20,
          "max_length_ratio": 3.0, "no_repeat_ngram_size": 0, "ban_unk": False,
          "val_bleu_batches": 2, "meteor": False}


def write_parallel(folder: Path, prefix: str, pairs: list[tuple[str, str]]) -> None:
    (folder / f"{prefix}.src").write_text("".join(f"{s}\n" for s, _ in pairs))
    (folder / f"{prefix}.tgt").write_text("".join(f"{t}\n" for _, t in pairs))


def test_misaligned_files_are_refused_with_both_counts(tmp_path, capsys):
    write_parallel(tmp_path, "train", date_pairs(5))
    (tmp_path / "train.tgt").write_text("one\ntwo\n")
    assert main(["data", "prepare", "translation", "-s", "src", "-t", "tgt", "--train",
                 str(tmp_path / "train"), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "has 5 lines but" in err and "has 2" in err


@pytest.fixture(scope="module")
def dates(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("dates")
    pairs = date_pairs(3600, seed=11)
    write_parallel(folder, "train", pairs[:3000])
    write_parallel(folder, "val", pairs[3000:3300])
    write_parallel(folder, "test", pairs[3300:])
    assert main(["data", "prepare", "translation", "-s", "src", "-t", "tgt", "--min-freq", "1",
                 "--train", str(folder / "train"), "--val", str(folder / "val"),
                 "--test", str(folder / "test"), "--out", str(folder / "shards"),
                 "--samples-per-shard", "700"]) == 0
    return folder


def test_batches_hold_teacher_forcing_targets(dates):
    datamodule = TranslationDataModule(str(dates / "shards"), batch_size=8, num_workers=0)
    batch = next(iter(datamodule.val_dataloader()))
    vocab = datamodule.target_vocab
    first = [vocab.tokens[i] for i in batch["tgt_out"][0] if i != IGNORE_INDEX]
    assert first[-1] == "<eos>"
    assert " ".join(first[:-1]) == batch["references"][0]
    assert vocab.tokens[batch["tgt_in"][0, 0]] == "<bos>"
    shifted = batch["tgt_out"][0, : len(first) - 1].tolist()
    assert batch["tgt_in"][0, 1 : len(first)].tolist() == shifted


def test_bucketing_pads_a_smaller_share_than_plain_batches():
    rng = random.Random(0)
    lengths = [rng.randint(3, 40) for _ in range(6400)]
    plain = [lengths[i : i + 64] for i in range(0, len(lengths), 64)]
    bucketed = list(bucketed_batches(lengths, 64, length=int, buffer_batches=50, seed=0))
    assert sorted(x for b in bucketed for x in b) == sorted(lengths)  # nothing lost
    plain_share = padding_share(plain, length=int)
    bucketed_share = padding_share(bucketed, length=int)
    assert bucketed_share < plain_share / 5, (bucketed_share, plain_share)


def test_within_a_source_length_targets_of_similar_length_share_a_batch(dates):
    """Few source lengths, targets of 1-40 tokens: sorted by source length alone, a batch's
    targets would be padded to about twice their mean length."""
    datamodule = TranslationDataModule(str(dates / "shards"), batch_size=8, num_workers=0,
                                       seed=0)
    rng = random.Random(0)
    pairs = [Pair([1] * rng.randint(3, 6), [1] * rng.randint(1, 40), "", "")
             for _ in range(8 * 50)]
    batches = list(datamodule.batches(iter(pairs), train=True))

    def padding(positions: list[torch.Tensor]) -> float:
        return 1 - sum(int(p.sum()) for p in positions) / sum(p.numel() for p in positions)

    assert padding([b["tgt_out"] != IGNORE_INDEX for b in batches]) < 0.1
    source_positions = [torch.arange(b["src"].shape[1]) < b["src_lengths"][:, None]
                        for b in batches]
    assert padding(source_positions) < 0.05  # the source still decides first


def test_unseeded_bucketing_follows_the_process_seed():
    """Without a seed of its own, the bucketer's batch order comes from the process's
    `random`, which the run's seed sets, not from the OS."""
    lengths = list(range(3, 40)) * 20

    def batch_order(seed: int) -> list[list[int]]:
        random.seed(seed)
        return list(bucketed_batches(lengths, 8, length=int, buffer_batches=50))

    assert batch_order(1) == batch_order(1)
    assert batch_order(1) != batch_order(2)


def test_every_rank_takes_its_kth_batch_from_the_same_place_in_its_sorted_buffer(dates):
    """Ranks read different sentences. Given the run's seed, their k-th batches are about
    as long, so no rank waits at every step for one that drew longer sentences; in an
    order drawn per rank, they differ by a third of the length range on average."""

    def longest_per_batch(seed: int | None, rank: int) -> list[int]:
        datamodule = TranslationDataModule(str(dates / "shards"), batch_size=8,
                                           num_workers=0, seed=seed)
        own = random.Random(rank)  # each rank's own sentences and process `random`
        random.seed(rank)
        pairs = [Pair([1] * own.randint(3, 40), [1], "", "") for _ in range(8 * 50 * 3)]
        return [int(batch["src_lengths"].max())
                for batch in datamodule.batches(iter(pairs), train=True)]

    def mean_gap(seed: int | None) -> float:
        pairs = zip(longest_per_batch(seed, rank=0), longest_per_batch(seed, rank=1),
                    strict=True)
        return statistics.mean(abs(first - second) for first, second in pairs)

    assert mean_gap(seed=5) < 2
    assert mean_gap(seed=None) > 8


@pytest.fixture(scope="module")
def trained(dates):
    pl.seed_everything(0, verbose=False)
    datamodule = TranslationDataModule(str(dates / "shards"), batch_size=32, num_workers=0)
    task = TranslationTask(
        model=settings(Seq2SeqConfig, cell="gru", embedding_dim=32, hidden_size=64, num_layers=1,
                       dropout=0.0, bidirectional=True, attention="general"),
        optim=OPTIM, eval_settings=SEARCH, label_smoothing=0.0,
        source_vocab=datamodule.source_vocab.tokens,
        target_vocab=datamodule.target_vocab.tokens, text=datamodule.manifest.text,
    )
    trainer = pl.Trainer(max_epochs=6, accelerator="cpu", logger=False,
                         enable_progress_bar=False, enable_checkpointing=False,
                         enable_model_summary=False, gradient_clip_val=1.0,
                         num_sanity_val_steps=0)
    trainer.fit(task, datamodule=datamodule)
    metrics = trainer.test(task, datamodule=datamodule, verbose=False)[0]
    path = dates / "model.ckpt"
    trainer.save_checkpoint(path)
    return task, metrics, path


def test_learns_date_rewriting_to_bleu_90(trained):
    _, metrics, _ = trained
    assert metrics["test_bleu_beam1"] >= 90
    assert metrics["test_bleu_beam3"] >= 90


def test_logged_bleu_equals_sacrebleu_on_the_translate_output(trained, dates, capsys):
    _, metrics, checkpoint = trained
    capsys.readouterr()
    assert main(["translate", str(checkpoint), "--beam-size", "3",
                 "--input", str(dates / "test.src")]) == 0
    output = capsys.readouterr().out.splitlines()
    references = (dates / "test.tgt").read_text().splitlines()
    assert len(output) == len(references)
    expected = sacrebleu.corpus_bleu(output, [references]).score
    assert metrics["test_bleu_beam3"] == pytest.approx(expected, rel=1e-6)  # a float32 metric


def test_translate_with_the_model_as_its_own_ensemble_writes_what_it_writes_alone(
    trained, dates, capsys
):
    _, _, checkpoint = trained
    outputs = []
    for ensemble in ([], ["--ensemble", str(checkpoint), str(checkpoint)]):
        capsys.readouterr()
        assert main(["translate", str(checkpoint), "--beam-size", "3", *ensemble,
                     "--input", str(dates / "val.src")]) == 0
        outputs.append(capsys.readouterr().out.splitlines())
    assert outputs[0] == outputs[1] and len(outputs[0]) > 50


def test_the_test_leaves_a_page_a_beam_table_and_heatmaps_of_the_longest_sentences(trained,
                                                                                  dates):
    task, metrics, _ = trained
    names = set(task.artifacts)
    assert {"translations.html", "bleu_signature.txt", "test_metrics_by_beam.csv",
            "test_metrics_by_beam.png"} <= names
    assert not {"translations.md"} & names  # the page replaced it
    assert "tok:13a" in task.artifacts["bleu_signature.txt"]
    page = task.artifacts["translations.html"]
    test_pairs = [line.split("\t") for line in zip_lines(dates / "test.src", dates / "test.tgt")]
    assert "all 300 test items" in page and page.count("<tr><td class=\"n\">") == 300
    assert all(f"<td>{source}</td>" in page for source, _ in test_pairs)

    rows = list(csv.DictReader(io.StringIO(task.artifacts["test_metrics_by_beam.csv"])))
    assert [int(row["beam_size"]) for row in rows] == [1, 3]
    for row in rows:
        logged = metrics[f"test_bleu_beam{row['beam_size']}"]
        assert float(row["bleu"]) == pytest.approx(logged, rel=1e-6)  # logged as float32

    heatmaps = sorted(name for name in names if name.startswith("attention/"))
    assert heatmaps == [f"attention/sentence_{n}.png" for n in range(4)]
    figure = task.artifacts["attention/sentence_0.png"]
    heatmap, colour_bar = figure.axes
    source_tokens = [label.get_text() for label in heatmap.get_xticklabels()]
    assert " ".join(source_tokens) in {source for source, _ in test_pairs}
    assert heatmap.get_yticklabels()[-1].get_text() == "<eos>"
    assert colour_bar.get_ylabel() == "attention weight"
    assert heatmap.get_title(loc="left").startswith(" ".join(source_tokens))


def zip_lines(*paths: Path) -> list[str]:
    columns = [path.read_text().splitlines() for path in paths]
    return ["\t".join(parts) for parts in zip(*columns, strict=True)]


def test_ban_unk_keeps_an_unk_loving_model_from_writing_it(trained, dates):
    task = copy.deepcopy(trained[0])
    with torch.no_grad():
        task.model.output.bias[task.target_vocab.unk_id] += 50.0  # <unk> now wins every step
    sources = (dates / "test.src").read_text().splitlines()[:8]
    for beam_size in (1, 3):
        assert all("<unk>" in line for line in task.translate(sources, beam_size))
        task.set_eval_settings(ban_unk=True)
        assert not any("<unk>" in line for line in task.translate(sources, beam_size))
        task.set_eval_settings(ban_unk=False)


def test_replace_unk_copies_the_year_an_unk_loving_model_attends_to(trained, dates):
    """Every output token is <unk>, so every word written is a copied source word; the
    first, the year, is written while attending to the source's year (the model learned
    to), as long as the decoder has not yet been fed an <unk>."""
    task = copy.deepcopy(trained[0])
    with torch.no_grad():
        task.model.output.bias[task.target_vocab.unk_id] += 50.0
    task.set_eval_settings(replace_unk=True)
    sources = (dates / "test.src").read_text().splitlines()[:20]
    for beam_size in (1, 3):
        translations = task.translate(sources, beam_size)
        assert not any("<unk>" in line for line in translations)
        for source, translation in zip(sources, translations, strict=True):
            assert set(translation.split()) <= set(source.split()), (source, translation)
        years = [t.split()[0] == s.split()[-1] for s, t in zip(sources, translations, strict=True)]
        assert sum(years) >= 16, list(zip(sources, translations, strict=True))


@pytest.mark.parametrize("subword", ["bpe", "unigram"])
def test_sentencepiece_pieces_round_trip_to_the_references(dates, subword, tmp_path):
    out = tmp_path / subword
    assert main(["data", "prepare", "translation", "-s", "src", "-t", "tgt",
                 "--train", str(dates / "train"), "--val", str(dates / "val"),
                 "--out", str(out), "--subword", subword, "--subword-vocab-size", "400"]) == 0
    datamodule = TranslationDataModule(str(out), batch_size=16, num_workers=0)
    assert datamodule.manifest.text["tokenizer"] == "sentencepiece"
    assert datamodule.target_vocab.tokens[:4] == ["<unk>", "<eos>", "<pad>", "<bos>"]
    batch = next(iter(datamodule.val_dataloader()))
    for row, reference in zip(batch["tgt_out"], batch["references"], strict=True):
        ids = [i for i in row.tolist() if i != IGNORE_INDEX][:-1]  # drop <eos>
        pieces = [datamodule.target_vocab.tokens[i] for i in ids]
        assert datamodule.target_text.detokenize(pieces) == reference


def test_joint_pieces_keep_every_character_of_unseen_names_and_share_one_embedding(
        dates, tmp_path):
    """Byte fallback spells characters the training text never held (the dates corpus has
    no capitals, umlauts or Polish letters) as bytes, so nothing becomes <unk>."""
    out = tmp_path / "joint"
    assert main(["data", "prepare", "translation", "-s", "src", "-t", "tgt",
                 "--train", str(dates / "train"), "--val", str(dates / "val"),
                 "--out", str(out), "--subword", "bpe", "--subword-vocab-size", "400",
                 "--subword-joint"]) == 0
    assert [path.name for path in out.glob("*.spm.model")] == ["joint.spm.model"]
    datamodule = TranslationDataModule(str(out), batch_size=16, num_workers=0)
    vocab = datamodule.source_vocab
    assert vocab.tokens == datamodule.target_vocab.tokens
    sentence = "Zoë Ångström und Jürgen Weiß grüßen Łódź am 5 März 2047."
    for text in (datamodule.source_text, datamodule.target_text):
        pieces = text.tokenize(sentence).split()
        assert vocab.unk_id not in vocab.encode(" ".join(pieces))
        assert text.detokenize(pieces) == sentence
    task = TranslationTask(
        model=settings(Seq2SeqConfig, cell="gru", embedding_dim=8, hidden_size=16,
                       share_embeddings=True),
        optim=OPTIM, eval_settings=SEARCH, label_smoothing=0.0, source_vocab=vocab.tokens,
        target_vocab=vocab.tokens, text=datamodule.manifest.text,
        text_models=datamodule.text_models)
    assert task.model.source_embedding is task.model.target_embedding


def test_shared_embeddings_refuse_a_dataset_with_two_vocabularies(dates, capsys):
    assert main(["launch", "task=translation", f"data.path={dates / 'shards'}",
                 "data.sample=null", "model.share_embeddings=true"]) == 2
    err = capsys.readouterr().err
    assert "model.share_embeddings=true" in err and "--subword-joint" in err
    assert len(err.strip().splitlines()) == 1


def test_init_range_bounds_every_weight_and_the_memory_is_the_encoder_output():
    config = Seq2SeqConfig(source_vocab_size=30, target_vocab_size=20, **settings(
        Seq2SeqConfig, embedding_dim=8, hidden_size=16, init_range=0.05, bidirectional=True))
    model = Seq2Seq(config).eval()
    assert all(p.abs().max() <= 0.05 for p in model.parameters())
    src, lengths = torch.randint(0, 30, (3, 7)), torch.tensor([7, 4, 1])
    state = model.encode(src, lengths)
    packed = pack_padded_sequence(model.source_embedding(src), lengths, batch_first=True,
                                  enforce_sorted=False)
    outputs, _ = pad_packed_sequence(model.encoder(packed)[0], batch_first=True,
                                     total_length=7)
    assert torch.equal(state["memory"], outputs)  # attention reads the encoder as it is


def test_bidirectional_encoder_needs_an_even_hidden_size():
    with pytest.raises(OrchestratorError, match="must be even \\(got 15\\)"):
        load_config(None, ["task=translation", "model.bidirectional=true",
                           "model.hidden_size=15"])


def test_scst_tunes_the_translator_with_sentence_bleu_rewards(trained, dates):
    """Self-critical training from the trained weights: the reward is each sampled
    translation's sentence BLEU (0..1), the trained model's samples earn most of it, and
    a step changes the weights."""
    task, _, _ = trained
    datamodule = TranslationDataModule(str(dates / "shards"), batch_size=32, num_workers=0)
    tuned = TranslationTask(**{**task.hparams, "self_critical": {"samples": 3,
                                                                  "baseline": "greedy"}})
    tuned.load_state_dict(task.state_dict())
    rewards: list[tuple[float, float]] = []

    class Rewards(pl.Callback):
        def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
            metrics = trainer.callback_metrics
            rewards.append((float(metrics["train_reward"]),
                            float(metrics["train_baseline_reward"])))

    pl.Trainer(max_epochs=1, limit_train_batches=3, limit_val_batches=0, accelerator="cpu",
               logger=False, enable_progress_bar=False, enable_checkpointing=False,
               enable_model_summary=False, callbacks=[Rewards()]).fit(tuned, datamodule=datamodule)
    assert len(rewards) == 3
    assert all(0.5 < reward <= 1.0 and 0.5 < baseline <= 1.0 for reward, baseline in rewards)
    assert any(not torch.equal(value, task.state_dict()[key])
               for key, value in tuned.state_dict().items())

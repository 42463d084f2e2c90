"""Scheduled sampling: the paper's three decays at known steps; at gold probability 1 the
step-by-step decode is teacher forcing exactly, at 0 the decoder reads its own samples, in
between the share of gold inputs follows the probability; and a task trains with it."""

from __future__ import annotations

import math

import pytest
import pytorch_lightning as pl
import torch

from orchestrator.config import load_config
from orchestrator.errors import OrchestratorError
from orchestrator.lightning_modules.scheduled_sampling import (
    SamplingSchedule,
    sampled_teacher_forcing,
)
from orchestrator.lightning_modules.seq2seq import Seq2Seq, Seq2SeqConfig
from tests.models import settings


def test_each_decay_gives_the_papers_probability_at_known_steps():
    linear = SamplingSchedule("linear", k=1.0, c=0.001, floor=0.1)
    assert [linear.gold_probability(i) for i in (0, 500, 900, 5000)] == pytest.approx(
        [1.0, 0.5, 0.1, 0.1])
    exponential = SamplingSchedule("exponential", k=0.99)
    assert exponential.gold_probability(100) == pytest.approx(0.99 ** 100)  # 0.366
    sigmoid = SamplingSchedule("inverse_sigmoid", k=100.0)
    assert sigmoid.gold_probability(0) == pytest.approx(100 / 101)
    assert sigmoid.gold_probability(460) == pytest.approx(0.5, abs=2e-3)  # k ln k
    assert sigmoid.gold_probability(10**9) < 1e-300  # no overflow however long the run
    assert SamplingSchedule().gold_probability(10**6) == 1.0  # none: teacher forcing


@pytest.mark.parametrize("input_feeding", [False, True])
def test_at_gold_probability_1_it_is_teacher_forcing(input_feeding):
    torch.manual_seed(0)
    model = Seq2Seq(Seq2SeqConfig(source_vocab_size=30, target_vocab_size=20, **settings(
        Seq2SeqConfig, embedding_dim=8, hidden_size=16, input_feeding=input_feeding))).eval()
    src, lengths = torch.randint(4, 30, (3, 7)), torch.tensor([7, 4, 2])
    tgt_in = torch.randint(4, 20, (3, 5))
    stepped = sampled_teacher_forcing(model.step, model.encode(src, lengths), tgt_in, 1.0)
    assert torch.allclose(stepped, model(src, lengths, tgt_in).log_softmax(-1), atol=1e-5)


class RecordingDecoder:
    """Predicts token 7 with certainty at every step and records the tokens it is fed."""

    def __init__(self):
        self.fed: list[torch.Tensor] = []

    def step(self, tokens: torch.Tensor, state: dict):
        self.fed.append(tokens.clone())
        log_probs = torch.full((tokens.size(0), 10), -math.inf)
        log_probs[:, 7] = 0.0
        return log_probs, state, None


def test_below_1_the_decoder_reads_its_own_samples_as_often_as_the_schedule_says():
    gold = torch.full((4000, 4), 3)
    gold[:, 0] = 1  # <bos>
    for probability, gold_share in ((0.0, 0.0), (0.3, 0.3), (1.0, 1.0)):
        decoder = RecordingDecoder()
        out = sampled_teacher_forcing(decoder.step, {}, gold, probability,
                                      generator=torch.Generator().manual_seed(0))
        assert out.shape == (4000, 4, 10)
        assert torch.equal(decoder.fed[0], gold[:, 0])  # the first input is always <bos>
        later = torch.stack(decoder.fed[1:])
        assert set(later.unique().tolist()) <= {3, 7}  # the gold token or the model's own
        assert (later == 3).float().mean().item() == pytest.approx(gold_share, abs=0.02)


def test_a_decay_needs_its_k_and_only_a_decoding_task_takes_it():
    with pytest.raises(OrchestratorError, match="decay=exponential needs 0 < k < 1"):
        load_config(None, ["task=translation", "train.scheduled_sampling.decay=exponential",
                           "train.scheduled_sampling.k=1.5"])
    with pytest.raises(OrchestratorError, match="decay=linear needs 0 < k <= 1 \\(with c > 0"):
        load_config(None, ["task=translation", "train.scheduled_sampling.decay=linear",
                           "train.scheduled_sampling.k=1"])
    with pytest.raises(OrchestratorError, match="for tasks translation, image_captioning"):
        load_config(None, ["train.scheduled_sampling.decay=inverse_sigmoid",
                           "train.scheduled_sampling.k=100"])


def test_a_captioner_trains_with_sampled_inputs_and_logs_the_gold_probability(tmp_path):
    from orchestrator.datasets.caption_data import CaptionDataModule
    from orchestrator.datasets.samples import SAMPLE_DATASETS
    from orchestrator.worker.tasks import TASKS

    config = load_config(None, [
        "task=image_captioning", f"data.path={tmp_path / 'shapes'}", "data.batch_size=8",
        "data.num_workers=0", "model.embedding_dim=8", "model.hidden_size=16",
        "train.scheduled_sampling.decay=inverse_sigmoid", "train.scheduled_sampling.k=1",
    ])
    SAMPLE_DATASETS["shapes"](tmp_path / "shapes", 0)
    datamodule = CaptionDataModule(config.data.path, batch_size=8, num_workers=0,
                                   image_size=config.data.image_size)
    module = TASKS["image_captioning"].build_module(config, datamodule)
    trainer = pl.Trainer(max_steps=3, accelerator="cpu", logger=False, limit_val_batches=0,
                         enable_progress_bar=False, enable_checkpointing=False,
                         enable_model_summary=False)
    trainer.fit(module, datamodule=datamodule)
    # k=1: 1 / (1 + e^2) at the third step, so most inputs were the model's own tokens
    assert trainer.callback_metrics["gold_probability"] == pytest.approx(1 / (1 + math.e ** 2))
    assert math.isfinite(trainer.callback_metrics["train_loss"])

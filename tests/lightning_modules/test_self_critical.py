"""Self-critical sequence training: on a toy decoder a reward that favours one token raises
that token's probability (with either baseline) and one that favours nothing changes
nothing; the corpus CIDEr-D is pycocoevalcap's; a captioner tuned with SCST from its
cross-entropy weights earns more reward as it trains on a batch."""

from __future__ import annotations

import itertools

import pytest
import pytorch_lightning as pl
import torch
from pycocoevalcap.cider.cider import Cider
from torch import nn

from orchestrator.config import EvalConfig, OptimConfig, load_config
from orchestrator.datasets.caption_data import CaptionDataModule
from orchestrator.errors import OrchestratorError
from orchestrator.lightning_modules.captioning import ImageCaptioningTask
from orchestrator.lightning_modules.decoding import DecodingConfig
from orchestrator.lightning_modules.image_captioner import ImageCaptionerConfig
from orchestrator.lightning_modules.metrics import CorpusCiderD
from orchestrator.lightning_modules.self_critical import (
    SelfCriticalSettings,
    self_critical_step,
    sequence_log_probs,
)
from tests.models import settings

PAD, BOS, EOS, FAVOURED = 0, 1, 2, 5
SEARCH = DecodingConfig(bos_id=BOS, eos_id=EOS, pad_id=PAD, max_length=4)


class TableDecoder(nn.Module):
    """The same learnable next-token distribution at every step, whatever came before."""

    def __init__(self, vocab: int = 8):
        super().__init__()
        self.logits = nn.Parameter(torch.zeros(vocab))

    def step(self, tokens: torch.Tensor, state: dict):
        log_probs = torch.log_softmax(self.logits, dim=-1).expand(tokens.size(0), -1)
        return log_probs.clone(), state, None

    def reorder_state(self, state: dict, index: torch.Tensor) -> dict:
        return {"rows": state["rows"].index_select(0, index)}

    def probability(self, token: int) -> float:
        """Among the tokens a search may draw (not pad, not bos)."""
        return torch.softmax(self.logits[2:], dim=-1)[token - 2].item()


def favours_one_token(sequences: list[list[int]], owners: list[int]) -> list[float]:
    return [float(tokens.count(FAVOURED)) for tokens in sequences]


@pytest.mark.parametrize("baseline", ["greedy", "mean"])
def test_a_reward_that_favours_one_token_raises_its_probability(baseline):
    torch.manual_seed(0)
    decoder = TableDecoder()
    optimizer = torch.optim.SGD(decoder.parameters(), lr=1.0)
    before = decoder.probability(FAVOURED)
    for number in range(10):
        step = self_critical_step(decoder, {"rows": torch.zeros(16, 1)}, 16, SEARCH,
                                  SelfCriticalSettings(samples=4, baseline=baseline),
                                  favours_one_token, torch.device("cpu"))
        optimizer.zero_grad()
        step.loss.backward()
        if number == 0:  # (later, a greedy baseline may itself be all favoured tokens)
            assert decoder.logits.grad[FAVOURED] < 0  # descending the loss raises its logit
        optimizer.step()
    assert decoder.probability(FAVOURED) > 3 * before  # 1/6 at first, ~0.7 here


def test_a_reward_every_sample_ties_with_its_baseline_teaches_nothing():
    decoder = TableDecoder()
    step = self_critical_step(decoder, {"rows": torch.zeros(4, 1)}, 4, SEARCH,
                              SelfCriticalSettings(samples=3, baseline="mean"),
                              lambda sequences, owners: [1.0] * len(sequences),
                              torch.device("cpu"))
    step.loss.backward()
    assert step.reward == step.baseline == 1.0
    assert torch.count_nonzero(decoder.logits.grad) == 0


def test_a_samples_log_probability_is_that_of_the_search_that_drew_it():
    """pad and bos are never drawn, so they share no probability; an EOS forced at the
    maximum length (4) was not drawn, so it counts for nothing."""
    decoder = TableDecoder(vocab=4)
    with torch.no_grad():
        decoder.logits.copy_(torch.tensor([5.0, 5.0, 1.0, 2.0]))
    log_probs, mask = sequence_log_probs(decoder, {"rows": torch.zeros(3, 1)},
                                         [[3, 3], [], [3, 3, 3, 3]], [0, 1, 2], SEARCH,
                                         torch.device("cpu"), [SEARCH.max_length] * 3)
    drawable = torch.log_softmax(torch.tensor([1.0, 2.0]), dim=-1)  # EOS, 3
    assert mask.tolist() == [[1, 1, 1, 0, 0], [1, 0, 0, 0, 0], [1, 1, 1, 1, 0]]
    expected = [2 * drawable[1] + drawable[0], drawable[0], 4 * drawable[1]]
    assert (log_probs * mask).sum(dim=1).tolist() == pytest.approx(
        [value.item() for value in expected])


def test_corpus_cider_d_is_pycocoevalcaps_when_the_corpus_is_the_scored_references():
    references = [["a red circle", "a red round circle"], ["a blue square", "blue square"],
                  ["a green triangle", "the green triangle"]]
    captions = ["a red circle", "a green square", "the green triangle"]
    ours = CorpusCiderD(references).scores(captions, references)
    _, theirs = Cider().compute_score({str(i): refs for i, refs in enumerate(references)},
                                      {str(i): [c] for i, c in enumerate(captions)})
    assert ours == pytest.approx(list(theirs))
    # one caption scored alone keeps the corpus' document frequencies (pycocoevalcap's
    # would be its own references', where every n-gram is in every document: 0)
    alone = CorpusCiderD(references).scores(captions[:1], references[:1])
    assert alone == pytest.approx([theirs[0]]) and theirs[0] > 1.0


def test_scst_needs_a_decoding_task_and_weights_to_start_from():
    with pytest.raises(OrchestratorError, match="set train.init_from to a cross-entropy"):
        load_config(None, ["task=image_captioning", "train.objective=scst"])
    with pytest.raises(OrchestratorError, match="scst rewards a decoder's outputs, so it is"):
        load_config(None, ["task=sentiment", "train.objective=scst", "train.init_from=x"])
    with pytest.raises(OrchestratorError, match="needs train.scst.samples >= 2"):
        load_config(None, ["task=image_captioning", "train.objective=scst", "train.init_from=x",
                           "train.scst.baseline=mean", "train.scst.samples=1"])


def _captioner(datamodule: CaptionDataModule, self_critical: dict | None,
               lr: float) -> ImageCaptioningTask:
    return ImageCaptioningTask(
        model=settings(ImageCaptionerConfig, embedding_dim=32, hidden_size=64, num_layers=1,
                       dropout=0.1, visual_attention=True),
        optim={**OptimConfig().model_dump(), "lr": lr},
        eval_settings=EvalConfig(beam_sizes=[1], max_length=12, val_bleu_batches=2,
                                 meteor=False).model_dump(),
        vocab=datamodule.vocab.tokens, media={"kind": "image", "image_size": 32, "frames": 1},
        self_critical=self_critical)


class Rewards(pl.Callback):
    def __init__(self) -> None:
        self.seen: list[float] = []

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
        self.seen.append(float(trainer.callback_metrics["train_reward"]))


class OneBatchDataModule(CaptionDataModule):
    """Training sees the first batch `steps` times: what SCST learns is then measured
    against sampling noise only, not against which images a step happened to draw."""

    steps = 120

    def train_dataloader(self) -> _Repeated:
        return _Repeated(next(iter(super().train_dataloader())), self.steps)


class _Repeated:
    def __init__(self, batch: dict, times: int) -> None:
        self.batch, self.times = batch, times

    def __iter__(self):
        return itertools.repeat(self.batch, self.times)

    def __len__(self) -> int:
        return self.times


def test_scst_from_cross_entropy_weights_earns_more_reward_as_it_trains(shape_captions):
    """Rewards of steps 1-20 against steps 101-120 on one batch, 8 samples per image.
    Over all the training images (three epochs, as this test did first) the rise was
    1.03-1.5x with the seed and the machine, and 1.02x on CI; on one batch with 4 samples
    over 80 steps, 1.55-2.66x here but 1.28x in CI's second test process; as now, 14 seeds
    and thread counts gave 2.02-2.79x."""
    pl.seed_everything(0, verbose=False)
    arguments = {"batch_size": 16, "num_workers": 0, "image_size": 32, "batches_per_epoch": 20}
    datamodule = CaptionDataModule(str(shape_captions), **arguments)
    trainer_settings = {"accelerator": "cpu", "logger": False, "enable_progress_bar": False,
                        "enable_checkpointing": False, "enable_model_summary": False,
                        "num_sanity_val_steps": 0, "limit_val_batches": 0}
    cross_entropy = _captioner(datamodule, None, lr=3e-3)
    pl.Trainer(max_epochs=2, **trainer_settings).fit(cross_entropy, datamodule=datamodule)

    one_batch = OneBatchDataModule(str(shape_captions), **arguments)
    tuned = _captioner(one_batch, {"samples": 8, "baseline": "greedy"}, lr=1e-3)
    tuned.load_state_dict(cross_entropy.state_dict())
    rewards = Rewards()
    pl.Trainer(max_epochs=1, callbacks=[rewards], **trainer_settings).fit(
        tuned, datamodule=one_batch)
    first, last = rewards.seen[:20], rewards.seen[-20:]
    assert len(rewards.seen) == OneBatchDataModule.steps
    assert sum(last) > 1.5 * sum(first), rewards.seen  # CIDEr-D of the samples

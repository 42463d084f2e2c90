"""Self-critical sequence training (Rennie et al. 2017): after cross-entropy training, tune a
decoder for the score it is judged by.

For each input the decoder samples k outputs; each sample's reward (a caption's CIDEr-D
against the input's references, a translation's sentence BLEU) minus a baseline weighs its
log-probability, as in REINFORCE. The baseline is the model's own test-time output
("self-critical"): the greedy decode's reward (the paper), or, with `mean`, the mean reward
of the input's other samples (self-critical.pytorch's "new self-critical", which needs no
greedy decode). A sample that beats the baseline becomes likelier, one that falls short
less likely; samples that tie with it teach nothing.

The samples are drawn without gradient by the shared search (`decoding.Sample`), then their
tokens are scored again, with gradient, one step at a time through the decoder's `step`.
The gradient must follow the log-probabilities of the very distribution the samples came
from: the caller runs both passes with dropout off, the scoring renormalises over the
tokens the search may draw (never pad, bos or a banned id: otherwise every penalised sample
would pass probability to tokens that are never drawn), and an EOS the search forced at
the maximum length counts for nothing. The loss is the advantage-weighted negative
log-probability per token, averaged over the batch's tokens (EOS included), as in
self-critical.pytorch's RewardCriterion.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from orchestrator.lightning_modules.decoding import DecodingConfig, Greedy, Sample, StepDecoder

# token ids of outputs (no bos, no EOS) and the input each belongs to -> each one's reward
Reward = Callable[[list[list[int]], list[int]], list[float]]


@dataclass(frozen=True)
class SelfCriticalSettings:
    """The `train.scst` config section (orchestrator/config.py holds defaults and checks)."""

    samples: int  # outputs sampled per input (k)
    baseline: str  # "greedy" or "mean"


@dataclass
class SelfCriticalStep:
    loss: torch.Tensor
    reward: float  # the samples' mean reward
    baseline: float  # the mean baseline they were measured against


def self_critical_training_loss(
    module: Any, encode: Callable[[], Any], batch_size: int, search: DecodingConfig,
    reward: Reward, source_lengths: torch.Tensor | None = None,
) -> torch.Tensor:
    """A task module's training loss under train.objective=scst (its `self_critical`
    settings): with dropout off, its model encodes the batch (`encode`, called then),
    samples and scores; the reward curves go to the module's logger."""
    module.model.eval()
    try:
        step = self_critical_step(module.model, encode(), batch_size, search,
                                  module.self_critical, reward, module.device, source_lengths)
    finally:
        module.model.train()
    module.log_dict({"train_reward": step.reward, "train_baseline_reward": step.baseline},
                    on_step=True, on_epoch=False)
    return module.log_training_loss(step.loss)


def self_critical_step(
    decoder: StepDecoder, state: Any, batch_size: int, search: DecodingConfig,
    settings: SelfCriticalSettings, reward: Reward, device: torch.device,
    source_lengths: torch.Tensor | None = None,
) -> SelfCriticalStep:
    """The loss of one batch: `state` is the encoded batch (with gradient), `search` the
    task's decoding settings (its length caps cap the samples; a translator's take the
    `source_lengths`)."""
    k = settings.samples
    sampled = Sample(dataclasses.replace(search, beam_size=k, nbest=k)).search(
        decoder, state, batch_size, source_lengths, device)
    sequences = [hypothesis.tokens for found in sampled for hypothesis in found]
    owners = [item for item, found in enumerate(sampled) for _ in found]
    rewards = torch.tensor(reward(sequences, owners), device=device)  # (N,)
    baseline = _baseline(decoder, state, batch_size, search, settings, reward, rewards,
                         torch.tensor(owners, device=device), source_lengths)
    caps = search.max_lengths(batch_size, source_lengths)
    log_probs, mask = sequence_log_probs(decoder, state, sequences, owners, search, device,
                                         [caps[owner] for owner in owners])  # (N, T)
    advantage = (rewards - baseline)[:, None]  # (N, 1)
    loss = -(advantage * log_probs * mask).sum() / mask.sum()
    return SelfCriticalStep(loss, rewards.mean().item(), baseline.mean().item())


def _baseline(
    decoder: StepDecoder, state: Any, batch_size: int, search: DecodingConfig,
    settings: SelfCriticalSettings, reward: Reward, rewards: torch.Tensor,
    owners: torch.Tensor, source_lengths: torch.Tensor | None,
) -> torch.Tensor:
    """Each sample's baseline (N,): its input's greedy reward, or the mean of its input's
    other samples' rewards."""
    if settings.baseline == "greedy":
        greedy = Greedy(search).search(decoder, state, batch_size, source_lengths,
                                       rewards.device)
        greedy_rewards = reward([found[0].tokens for found in greedy], list(range(batch_size)))
        return torch.tensor(greedy_rewards, device=rewards.device)[owners]
    totals = torch.zeros(batch_size, device=rewards.device).index_add_(0, owners, rewards)
    counts = torch.zeros(batch_size, device=rewards.device).index_add_(
        0, owners, torch.ones_like(rewards))
    return (totals[owners] - rewards) / (counts[owners] - 1).clamp(min=1)


def sequence_log_probs(
    decoder: StepDecoder, state: Any, sequences: list[list[int]], owners: list[int],
    search: DecodingConfig, device: torch.device, caps: list[int],
) -> tuple[torch.Tensor, torch.Tensor]:
    """The log-probability (with gradient) of each token of each sequence, its EOS included,
    as the search drew it, decoding from its owner's row of `state`: (N, T) log-probs and
    the (N, T) mask of the positions that count. `caps`: each sequence's length cap, where
    the search forced EOS."""
    length = max(len(tokens) for tokens in sequences) + 1
    fed = torch.full((len(sequences), length), search.pad_id, dtype=torch.long)
    wanted = torch.full_like(fed, search.eos_id)  # past the end: drawable, masked out
    mask = torch.zeros(fed.shape)
    for row, (tokens, cap) in enumerate(zip(sequences, caps, strict=True)):
        fed[row, : len(tokens) + 1] = torch.tensor([search.bos_id, *tokens])
        wanted[row, : len(tokens) + 1] = torch.tensor([*tokens, search.eos_id])
        drawn = len(tokens) + (len(tokens) < cap)  # a forced EOS is not drawn
        mask[row, :drawn] = 1.0
    fed, wanted, mask = fed.to(device), wanted.to(device), mask.to(device)
    never_drawn = torch.tensor([i for i in (search.pad_id, search.bos_id, *search.banned_ids)
                                if i != search.eos_id], device=device)
    state = decoder.reorder_state(state, torch.tensor(owners, device=device))
    picked = []
    for position in range(length):
        log_probs, state, _ = decoder.step(fed[:, position], state)  # (N, V)
        log_probs = log_probs.index_fill(1, never_drawn, -math.inf).log_softmax(dim=-1)
        picked.append(log_probs.gather(1, wanted[:, position, None])[:, 0])
    return torch.stack(picked, dim=1), mask


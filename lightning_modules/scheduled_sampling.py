"""Scheduled sampling (Bengio et al. 2015) for the translation and captioning decoders.

Teacher forcing feeds the decoder the gold previous token at every position, so it never
learns to continue from its own mistakes, which is all it sees when it decodes. Scheduled
sampling feeds the gold token with probability eps_i at training step i and otherwise a
token sampled from the model's own prediction at the previous position, with eps_i decaying
from 1 as training goes on. No gradient flows through the sampling decision, as in the
paper. While eps_i is 1 the decoder runs over the whole target at once, as before.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytorch_lightning as pl
import torch

# The search interface every decoder has: tokens (N,), state -> log-probs (N, V), new state,
# attention (or None).
StepFunction = Callable[[torch.Tensor, dict[str, Any]], tuple[torch.Tensor, dict[str, Any], Any]]


@dataclass(frozen=True)
class SamplingSchedule:
    """The paper's three decays of eps_i (section 2.4); `none` keeps eps_i at 1.
    linear: max(floor, k - c*i); exponential: k**i; inverse_sigmoid: k / (k + exp(i/k)).
    The config (ScheduledSamplingConfig) names the decays and checks k, c and floor."""

    decay: str = "none"
    k: float | None = None
    c: float = 0.0
    floor: float = 0.0

    def gold_probability(self, step: int) -> float:
        if self.decay == "linear":
            return max(self.floor, self.k - self.c * step)
        if self.decay == "exponential":
            return self.k ** step
        if self.decay == "inverse_sigmoid":
            return self.k / (self.k + math.exp(min(step / self.k, 700.0)))
        return 1.0


def sampled_teacher_forcing(step: StepFunction, state: dict[str, Any], tgt_in: torch.Tensor,
                            gold_probability: float,
                            generator: torch.Generator | None = None) -> torch.Tensor:
    """Log-probs (B, T, V) for every target position, decoding one position at a time: the
    first input is tgt_in's (<bos>); each later one is the gold token with probability
    `gold_probability`, else a token sampled from the previous position's prediction."""
    tokens, outputs = tgt_in[:, 0], []
    for position in range(tgt_in.size(1)):
        log_probs, state, _ = step(tokens, state)
        outputs.append(log_probs)
        if position + 1 < tgt_in.size(1):
            sampled = torch.multinomial(log_probs.detach().float().exp(), 1,
                                        generator=generator)[:, 0]
            coins = torch.rand(tokens.shape, generator=generator, device=tokens.device)
            tokens = torch.where(coins < gold_probability, tgt_in[:, position + 1], sampled)
    return torch.stack(outputs, dim=1)


def training_logits(module: pl.LightningModule, inputs: tuple[torch.Tensor, ...],
                    tgt_in: torch.Tensor) -> torch.Tensor:
    """The training step's scores (B, T, V) of `module.model` on `inputs` (what its encode
    takes): teacher forcing, or scheduled sampling once the gold probability is below 1.
    Log-probs stand in for logits: cross-entropy's log-softmax leaves them as they are."""
    gold = module.sampling.gold_probability(module.global_step)
    if gold >= 1.0:
        return module.model(*inputs, tgt_in)
    module.log("gold_probability", gold, on_step=True, on_epoch=False)
    return sampled_teacher_forcing(module.model.step, module.model.encode(*inputs), tgt_in, gold)

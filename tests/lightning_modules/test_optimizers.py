"""The optimiser every task trains with: torch's fused step on CPU, and the same updates as
torch's default loop (which is what checkpoints written before it were trained with)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from orchestrator.lightning_modules.optimizers import configure_optimizers

SETTINGS = {"lr": 0.01, "weight_decay": 0.001, "lr_decay": 1.0, "lr_decay_start": 1}


def trained(optimizer_of, steps: int = 5) -> nn.Module:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Embedding(50, 8), nn.LSTM(8, 16, batch_first=True))
    optimizer = optimizer_of(model)
    inputs = torch.randint(0, 50, (4, 7))
    for _ in range(steps):
        optimizer.zero_grad()
        output, _ = model(inputs)
        (output ** 2).mean().backward()
        optimizer.step()
    return model


@pytest.mark.parametrize("name, default", [("adam", torch.optim.Adam),
                                           ("sgd", torch.optim.SGD)])
def test_fused_steps_match_the_default_loop(name, default):
    def fused(model: nn.Module) -> torch.optim.Optimizer:
        optimizer = configure_optimizers(model.parameters(),
                                         {"optimizer": name, **SETTINGS})["optimizer"]
        assert optimizer.defaults["fused"] is True
        return optimizer

    def plain(model: nn.Module) -> torch.optim.Optimizer:
        return default(model.parameters(), lr=SETTINGS["lr"],
                       weight_decay=SETTINGS["weight_decay"])

    ours, reference = trained(fused), trained(plain)
    for mine, theirs in zip(ours.parameters(), reference.parameters(), strict=True):
        torch.testing.assert_close(mine, theirs)
    assert not torch.equal(ours[0].weight, trained(plain, steps=0)[0].weight)  # it moved

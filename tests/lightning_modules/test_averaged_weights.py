"""Checkpoint averaging: the mean of the float weights of the last epochs, the latest counters."""

from __future__ import annotations

import torch

from orchestrator.lightning_modules.averaged_weights import AverageLastEpochs

EPOCHS = 3
STEPS_PER_EPOCH = 12  # short epochs, so the model is still improving at every epoch end


def test_averaging_takes_the_mean_of_float_weights_and_the_latest_counters():
    averaging = AverageLastEpochs(2)
    for weight, count in ((1.0, 1), (2.0, 2), (4.0, 3)):  # only the last 2 are kept
        averaging.states.append({"w": torch.full((2,), weight), "n": torch.tensor(count)})
    average = averaging.average()
    assert average["w"].tolist() == [3.0, 3.0] and int(average["n"]) == 3

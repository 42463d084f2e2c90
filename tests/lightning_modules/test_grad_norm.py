"""The gradient norm before clipping: logged at every logged step, and between logged steps
summarised as min/mean/max, checked against hand-computed norms in a real MLflow store."""

from __future__ import annotations

import pytorch_lightning as pl
import torch
from mlflow.tracking import MlflowClient
from pytorch_lightning.loggers import MLFlowLogger
from torch import nn
from torch.utils.data import DataLoader

from orchestrator.lightning_modules.task_module import TaskModule

# the step's gradient is x (loss = w . x with w fixed), so its norm is |x|: 5, 1, 13, 2.5
INPUTS = [[3.0, 4.0], [0.6, 0.8], [5.0, 12.0], [1.5, 2.0]]


class FixedWeights(TaskModule):
    def __init__(self) -> None:
        super().__init__()
        self.save_hyperparameters({"optim": {"optimizer": "sgd", "lr": 0.0, "weight_decay": 0.0,
                                             "lr_decay": 1.0, "lr_decay_start": 1}})
        self.model = nn.Linear(2, 1, bias=False)

    def training_step(self, batch: torch.Tensor, index: int) -> torch.Tensor:
        return self.log_training_loss(self.model(batch).sum())


def test_norms_before_clipping_every_step_and_per_interval(tmp_path):
    logger = MLFlowLogger(tracking_uri=f"sqlite:///{tmp_path}/mlflow.db")
    trainer = pl.Trainer(max_steps=4, log_every_n_steps=2, logger=logger,
                         gradient_clip_val=0.1,  # clipping comes after: norms are unclipped
                         enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False, accelerator="cpu")
    data = DataLoader(torch.tensor(INPUTS), batch_size=None)
    trainer.fit(FixedWeights(), data)
    client = MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")

    def history(key: str) -> list[tuple[int, float]]:
        return [(m.step, round(m.value, 4)) for m in client.get_metric_history(logger.run_id, key)]

    assert history("grad_norm") == [(1, 1.0), (3, 2.5)]  # the logged steps' own norms
    assert history("grad_norm_min") == [(1, 1.0), (3, 2.5)]
    assert history("grad_norm_mean") == [(1, 3.0), (3, 7.75)]
    assert history("grad_norm_max") == [(1, 5.0), (3, 13.0)]  # the spike at step 2 shows
    assert [step for step, _ in history("train_loss")] == [1, 3]


def test_accumulated_batches_make_one_step_one_loss_and_one_norm(tmp_path):
    """Two batches a step: the gradient is their mean (Lightning scales each loss by 1/2),
    so the norms are |(x1 + x2) / 2|; train_loss is the mean of the two batches' losses,
    one point per step, not one per batch."""
    logger = MLFlowLogger(tracking_uri=f"sqlite:///{tmp_path}/mlflow.db")
    trainer = pl.Trainer(max_epochs=1, log_every_n_steps=1, accumulate_grad_batches=2,
                         logger=logger, enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False, accelerator="cpu")
    module = FixedWeights()
    trainer.fit(module, DataLoader(torch.tensor(INPUTS), batch_size=None))
    assert trainer.global_step == 2
    client = MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")

    def history(key: str) -> list[tuple[int, float]]:
        return [(m.step, round(m.value, 4)) for m in client.get_metric_history(logger.run_id, key)]

    assert history("grad_norm") == [(0, 3.0), (1, 7.7177)]  # |(1.8, 2.4)|, |(3.25, 7)|
    weights = module.model.weight.detach()[0]
    losses = [float(weights @ torch.tensor(x)) for x in INPUTS]
    assert history("train_loss") == [(0, round((losses[0] + losses[1]) / 2, 4)),
                                     (1, round((losses[2] + losses[3]) / 2, 4))]

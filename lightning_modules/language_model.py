"""The `language_model` task: training, evaluation and optimisers around RNNLanguageModel."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from orchestrator.datasets.batches import IGNORE_INDEX, LanguageModelBatch
from orchestrator.datasets.tokenizer import Tokenizer
from orchestrator.lightning_modules.cells import Hidden, detach_hidden, reset_rows
from orchestrator.lightning_modules.metrics import bits_per_token, perplexity_metric
from orchestrator.lightning_modules.rnn_language_model import (
    RNNLanguageModel,
    RNNLanguageModelConfig,
)
from orchestrator.lightning_modules.task_module import TaskModule


class LanguageModelTask(TaskModule):
    """Steps and optimisers only; data comes from LanguageModelDataModule.

    With `carry_hidden`, the hidden state of each loader stream is carried (detached)
    from one BPTT window to the next: stateful truncated BPTT.
    """

    def __init__(
        self,
        model: dict[str, Any],
        optim: dict[str, Any],
        vocab: list[str],
        level: str,
        carry_hidden: bool = True,
    ):
        super().__init__()
        # Not sent to the logger: the launcher logs the flattened config as MLflow params.
        self.save_hyperparameters(logger=False)
        self.model = RNNLanguageModel(RNNLanguageModelConfig(vocab_size=len(vocab), **model))
        self.tokenizer = Tokenizer(level, vocab)
        self.carry_hidden = carry_hidden
        self.val_perplexity = perplexity_metric()
        self.test_perplexity = perplexity_metric()
        self._hidden: dict[tuple[str, int], Hidden] = {}

    def _forward_window(self, batch: LanguageModelBatch, stage: str) -> torch.Tensor:
        """Logits (B, T, V) for one window, with the stream's carried state."""
        key = (stage, int(batch["stream"]))
        hidden = self._hidden.get(key) if self.carry_hidden else None
        if hidden is not None:
            hidden = reset_rows(hidden, batch["reset"])
        logits, hidden = self.model(batch["inputs"], hidden)
        if self.carry_hidden:
            self._hidden[key] = detach_hidden(hidden)
        return logits

    def training_step(self, batch: LanguageModelBatch, batch_idx: int) -> torch.Tensor:
        logits = self._forward_window(batch, "train")
        loss = F.cross_entropy(
            logits.flatten(0, 1), batch["targets"].flatten(), ignore_index=IGNORE_INDEX
        )
        return self.log_training_loss(loss)

    def validation_step(self, batch: LanguageModelBatch, batch_idx: int) -> None:
        self.val_perplexity.update(self._forward_window(batch, "val"), batch["targets"])

    def test_step(self, batch: LanguageModelBatch, batch_idx: int) -> None:
        self.test_perplexity.update(self._forward_window(batch, "test"), batch["targets"])

    def on_validation_epoch_start(self) -> None:
        self._drop_hidden("val")

    def on_test_epoch_start(self) -> None:
        self._drop_hidden("test")

    def on_train_epoch_start(self) -> None:
        self._drop_hidden("train")

    def on_validation_epoch_end(self) -> None:
        self._log_perplexity("val", self.val_perplexity.compute())
        self.val_perplexity.reset()

    def on_test_epoch_end(self) -> None:
        self._log_perplexity("test", self.test_perplexity.compute())
        self.test_perplexity.reset()

    def _log_perplexity(self, stage: str, perplexity: torch.Tensor) -> None:
        # compute() already summed over ranks: every rank holds the same value, and
        # sync_dist's mean of equal values changes nothing.
        self.log(f"{stage}_perplexity", perplexity, sync_dist=True)
        self.log(f"{stage}_loss", perplexity.log(), sync_dist=True)
        if self.tokenizer.level == "char":
            self.log(f"{stage}_bpc", bits_per_token(perplexity.item()), sync_dist=True)

    def _drop_hidden(self, stage: str) -> None:
        self._hidden = {key: value for key, value in self._hidden.items() if key[0] != stage}

    def generate_text(self, prompt: str, length: int, temperature: float, seed: int = 0) -> str:
        """The prompt followed by `length` sampled tokens."""
        ids = self.tokenizer.encode(prompt) or [self.tokenizer.unk_id]
        generator = torch.Generator(device=self.device).manual_seed(seed)
        self.model.eval()
        out = self.model.generate(
            torch.tensor([ids], device=self.device), length, temperature, generator
        )
        continuation = self.tokenizer.decode(out[0].tolist())
        return prompt + ("" if self.tokenizer.level == "char" else " ") + continuation

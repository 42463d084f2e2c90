"""The `language_model` task: training, evaluation and optimisers around RNNLanguageModel."""

from __future__ import annotations

import re
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

    def on_train_start(self) -> None:
        # Once per fit, not per epoch: the training stream runs on across epochs
        # (streaming.ContinuingEpochs), so an epoch's first window continues the last one's.
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
        return prompt + self._continuation(prompt, length, temperature, seed)

    def sample_text(self, prompt: str, length: int, temperature: float, seed: int = 0) -> str:
        """A sample for the run's samples.txt that says how it was made (prompt, settings)
        and ends at a sentence end or a whole word, saying what the length cap cut off:
        sampling always runs to the cap, which rarely falls between two sentences."""
        continuation, ending = trimmed_continuation(
            self._continuation(prompt, length, temperature, seed), length)
        return (f"prompt: {prompt!r}\n"
                f"settings: temperature {temperature:g}, {length} {self.tokenizer.level} "
                f"tokens sampled, seed {seed}\n\n"
                f"{prompt}{continuation}\n\n[{ending}]")

    def _continuation(self, prompt: str, length: int, temperature: float, seed: int) -> str:
        """`length` tokens sampled after the prompt, as text (a word-level one starts with
        a space, so it follows the prompt as written)."""
        ids = self.tokenizer.encode(prompt) or [self.tokenizer.unk_id]
        generator = torch.Generator(device=self.device).manual_seed(seed)
        self.model.eval()
        out = self.model.generate(
            torch.tensor([ids], device=self.device), length, temperature, generator
        )
        continuation = self.tokenizer.decode(out[0].tolist())
        return ("" if self.tokenizer.level == "char" else " ") + continuation


SENTENCE_END = re.compile(r"[.!?](?=\s|$)|\n")


def trimmed_continuation(text: str, length: int) -> tuple[str, str]:
    """Sampled text cut where a reader expects an end: after its last sentence end (. ! ?
    or a line end) if that keeps at least half of it, else after its last whole word; and
    a note saying which. Text with neither is kept whole, and the note says it stops
    mid-word."""
    cap = f"sampling stopped at the {length}-token length cap"
    ends = [match.end() for match in SENTENCE_END.finditer(text)]
    if ends and ends[-1] >= len(text.rstrip()):
        return text.rstrip(), f"{cap}, at a sentence end"
    if ends and ends[-1] >= len(text) / 2:
        dropped = len(text) - ends[-1]
        return text[: ends[-1]].rstrip(), (f"{cap}; cut after the last full sentence "
                                           f"({dropped} characters after it dropped)")
    space = text.rstrip().rfind(" ")
    if space > len(text) / 2:
        return text[:space] + " …", f"{cap} mid-sentence; cut after the last whole word"
    return text, f"{cap} mid-sentence"

"""Training tokens/s of the language model through the project's Lightning module against a
plain PyTorch loop on the same model, batches and device, in one run; no Ray, no MLflow.

    python -m benchmarks.lightning_vs_plain --device cuda [--precision bf16-mixed]

The GPU check of issue #15 as one command (goal: Lightning / plain >= 0.95): on a GPU a
step takes milliseconds, so a fixed per-step cost of the Lightning path (hooks, logging,
the gradient norm) weighs far more than on a CPU. Runs on the CPU too (`--device cpu`).
Both paths time each epoch from its first batch to its last (TokenThroughput's clock).
"""

from __future__ import annotations

import argparse

import pytorch_lightning as pl
import torch

from benchmarks.lm_throughput import WORK, plain_loop, rate_rows, steady
from benchmarks.results import append_section
from orchestrator.config import ExperimentConfig, load_config
from orchestrator.inputs import ensure_dataset, resolve_paths
from orchestrator.lightning_modules.throughput import TokenThroughput
from orchestrator.worker.tasks import TASKS


class EpochRates(pl.Callback):
    """Collects the tokens/s TokenThroughput (the callback before it) logs every epoch."""

    def __init__(self) -> None:
        self.rates: list[float] = []

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if "train_tokens_per_sec" in trainer.callback_metrics:
            self.rates.append(float(trainer.callback_metrics["train_tokens_per_sec"]))


def lightning_path(config: ExperimentConfig, device: str) -> list[float]:
    """The task's DataModule and LightningModule under a plain Lightning Trainer, with the
    settings a launch gives it (clipping, logging cadence, precision)."""
    pl.seed_everything(config.seed, verbose=False)
    task = TASKS[config.task]
    datamodule = task.build_datamodule(config)
    module = task.build_module(config, datamodule)
    rates = EpochRates()
    trainer = pl.Trainer(
        max_epochs=config.train.max_epochs, accelerator="gpu" if device == "cuda" else "cpu",
        devices=1, precision=config.train.precision, logger=False,
        callbacks=[TokenThroughput(), rates], gradient_clip_val=config.optim.clip,
        log_every_n_steps=config.train.log_every_n_steps, enable_progress_bar=False,
        enable_checkpointing=False, enable_model_summary=False, num_sanity_val_steps=0,
        limit_val_batches=0,
    )
    trainer.fit(module, datamodule=datamodule)
    return rates.rates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=["cpu", "cuda"],
                        default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--threads", type=int, default=2, help="CPU threads, both paths")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="a config override (model.hidden_size=1024, data.batch_size=128)")
    args = parser.parse_args()
    WORK.mkdir(exist_ok=True)
    config = resolve_paths(load_config(None, [
        f"data.path={WORK / 'grammar'}", "data.sample=grammar", "model.hidden_size=256",
        "model.embedding_dim=64", f"train.max_epochs={args.epochs}", "optim.clip=5",
        f"ray.use_gpu={args.device == 'cuda'}", *args.set,
    ]))
    ensure_dataset(config)
    torch.set_num_threads(args.threads)
    plain = plain_loop(config, args.threads, args.device)
    lightning = lightning_path(config, args.device)
    rows = rate_rows({"plain PyTorch loop": plain, "Lightning module and Trainer": lightning})
    ratio = steady(lightning) / steady(plain)
    notes = (f"Ratio Lightning / plain on {args.device} = **{ratio:.3f}** "
             f"(goal >= 0.95). Char LSTM {config.model.num_layers}x{config.model.hidden_size}, "
             f"batch {config.data.batch_size} x bptt {config.data.bptt}, precision "
             f"{config.train.precision} (Lightning path; the plain loop runs fp32), "
             f"{args.threads} CPU threads, generated grammar corpus"
             + (f"; overrides: {', '.join(args.set)}." if args.set else "."))
    print(append_section("LM training throughput: Lightning vs plain PyTorch", rows, notes))


if __name__ == "__main__":
    main()

"""Training tokens/s of the language model through `orchestrator launch` (1 Ray worker)
against a plain PyTorch loop on the same model, batches and shards, in one run.

    python benchmarks/lm_throughput.py [--epochs 4]

Goal: launch / plain >= 0.95. Both use the same number of CPU threads and the same
streaming reader; the rate is measured from each epoch's first batch to its last.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch
from mlflow.tracking import MlflowClient

from benchmarks.process_cpu import ProcessCPU
from benchmarks.results import append_section
from orchestrator.config import ExperimentConfig, load_config
from orchestrator.datasets.batches import IGNORE_INDEX
from orchestrator.datasets.language_model_data import LanguageModelDataModule
from orchestrator.inputs import ensure_dataset, resolve_paths
from orchestrator.launch import launch
from orchestrator.lightning_modules.cells import detach_hidden, reset_rows
from orchestrator.lightning_modules.optimizers import configure_optimizers
from orchestrator.lightning_modules.rnn_language_model import (
    RNNLanguageModel,
    RNNLanguageModelConfig,
)
from orchestrator.worker.tasks import model_settings, stream_settings

WORK = Path(__file__).with_name("work")


def plain_loop(config: ExperimentConfig, threads: int, device: str = "cpu") -> list[float]:
    """Tokens/s per epoch of a hand-written loop: the baseline, no Lightning, no Ray. On a
    GPU the clock stops after the device has finished each epoch's last step."""
    torch.set_num_threads(threads)
    torch.manual_seed(config.seed)
    data = LanguageModelDataModule(config.data.path, bptt=config.data.bptt,
                                   **stream_settings(config))
    settings = RNNLanguageModelConfig(len(data.tokenizer),
                                      **model_settings(config.model, RNNLanguageModelConfig))
    model = RNNLanguageModel(settings).to(device)
    # the optimiser a launch builds, so the ratio measures the orchestrator, not the step
    optimizer = configure_optimizers(model.parameters(), config.optim.model_dump())["optimizer"]
    rates = []
    for _ in range(config.train.max_epochs):
        hidden, tokens, started = {}, 0, None
        model.train()
        for batch in data.train_dataloader():
            started = started or time.perf_counter()
            batch = {key: value.to(device) if isinstance(value, torch.Tensor) else value
                     for key, value in batch.items()}
            state = hidden.get(batch["stream"])
            if state is not None:
                state = reset_rows(state, batch["reset"])
            logits, state = model(batch["inputs"], state)
            hidden[batch["stream"]] = detach_hidden(state)
            loss = torch.nn.functional.cross_entropy(
                logits.flatten(0, 1), batch["targets"].flatten(), ignore_index=IGNORE_INDEX
            )
            optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), config.optim.clip)
            optimizer.step()
            tokens += int((batch["targets"] != IGNORE_INDEX).sum())
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        rates.append(tokens / (time.perf_counter() - started))
    return rates


def through_launch(config: ExperimentConfig) -> list[float]:
    result = launch(config)
    history = MlflowClient(result.tracking_uri).get_metric_history(
        result.run_id, "train_tokens_per_sec"
    )
    return [m.value for m in history]


def steady(rates: list[float]) -> float:
    """The median rate of the epochs after the first, which warms caches, allocators and
    kernels."""
    return statistics.median(rates[1:] or rates)


def rate_rows(paths: dict[str, list[float]]) -> list[dict[str, object]]:
    """One table row per path: its steady rate and every epoch's."""
    return [{"path": name, "tokens/s (median, epochs 2+)": steady(rates),
             "per epoch": ", ".join(f"{rate:.0f}" for rate in rates)}
            for name, rates in paths.items()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="a config override for both paths (train.log_every_n_steps=50)")
    parser.add_argument("--profile", action="store_true",
                        help="also report user/system CPU seconds per process kind")
    args = parser.parse_args()
    WORK.mkdir(exist_ok=True)
    config = resolve_paths(load_config(None, [
        f"data.path={WORK / 'grammar'}", "data.sample=grammar", "model.hidden_size=256",
        "model.embedding_dim=64", f"train.max_epochs={args.epochs}",
        "train.progress_bar=false", "ray.num_workers=1", f"ray.cpus_per_worker={args.threads}",
        f"tracking.uri=sqlite:///{WORK / 'mlflow.db'}", f"ray.storage_path={WORK / 'runs'}",
        "name=bench-throughput", *args.set,
    ]))
    ensure_dataset(config)
    with ProcessCPU() as plain_cpu:
        plain = plain_loop(config, args.threads)
    with ProcessCPU() as launch_cpu:
        launched = through_launch(config)
    rows = rate_rows({"plain PyTorch loop": plain,
                      "orchestrator launch (1 Ray worker)": launched})
    notes = (f"Ratio launch / plain = **{steady(launched) / steady(plain):.3f}** (goal >= 0.95). "
             f"Char LSTM 2x256, batch {config.data.batch_size} x bptt {config.data.bptt}, "
             f"{args.threads} threads, 1 loader worker, generated grammar corpus"
             + (f"; overrides: {', '.join(args.set)}." if args.set else "."))
    if args.profile:
        notes += ("\n\nCPU seconds per process kind over each whole phase (start-up, "
                  "validation and test included):\n\n" + plain_cpu.table("plain loop")
                  + "\n\n" + launch_cpu.table("launch"))
    print(append_section("LM training throughput: launch vs plain PyTorch", rows, notes))


if __name__ == "__main__":
    main()

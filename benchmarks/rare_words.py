"""Rare words: Multi30k val sentences whose source holds a word seen fewer than twice in
training (a word a min-frequency-2 vocabulary maps to <unk>), translated at beam 5 and
scored apart from the rest, so a change that helps common words but hurts rare ones shows.

Per model (a checkpoint, optionally with eval settings changed): corpus BLEU on the slice
and on the rest of val; outputs holding `<unk>`; and copies: of the rare source words that
also stand in the reference as they are (names, numbers, brands), the share the output
holds too.

    python -m benchmarks.rare_words word=WORD.ckpt word+replace_unk=WORD.ckpt@replace_unk \
        subword=SUBWORD.ckpt [--shared ../shared/data] [--set eval.alpha=1.0 ...]
"""

from __future__ import annotations

import argparse
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import sacrebleu
import torch

from benchmarks.launching import ROOT
from benchmarks.results import append_section
from orchestrator.config import parse_override
from orchestrator.datasets.moses_text import MosesText
from orchestrator.worker.tasks import load_task_module

MIN_COUNT = 2  # the shipped word config's --min-freq: rarer words are <unk> to it


@dataclass
class Sentence:
    source: str
    reference: str
    rare: list[str]  # source tokens seen fewer than MIN_COUNT times in training
    copyable: list[str]  # rare tokens that stand in the reference as they are


def split_by_rarity(train_sources: list[str], sources: list[str],
                    references: list[str]) -> tuple[list[Sentence], list[Sentence]]:
    """(sentences with a rare source word, the others), by Moses tokens of the source."""
    source_text, target_text = MosesText("de"), MosesText("en")
    counts = Counter(token for line in train_sources
                     for token in source_text.tokenize(line).split())
    rare, common = [], []
    for source, reference in zip(sources, references, strict=True):
        tokens = source_text.tokenize(source).split()
        rare_tokens = [t for t in tokens if counts[t] < MIN_COUNT and any(c.isalnum() for c in t)]
        in_reference = set(target_text.tokenize(reference).split())
        sentence = Sentence(source, reference, rare_tokens,
                            [t for t in rare_tokens if t in in_reference])
        (rare if rare_tokens else common).append(sentence)
    return rare, common


def translate_all(checkpoint: Path, settings: dict[str, bool], sources: list[str],
                  beam: int) -> list[str]:
    module = load_task_module(checkpoint, ["translation"])
    if settings:
        module.set_eval_settings(**settings)
    return [line for start in range(0, len(sources), 64)
            for line in module.translate(sources[start : start + 64], beam)]


def scores(sentences: list[Sentence], outputs: list[str]) -> dict[str, object]:
    bleu = sacrebleu.corpus_bleu(outputs, [[s.reference for s in sentences]]).score
    target_text = MosesText("en")
    copyable = copied = 0
    for sentence, output in zip(sentences, outputs, strict=True):
        written = set(target_text.tokenize(output).split())
        copyable += len(sentence.copyable)
        copied += sum(token in written for token in sentence.copyable)
    return {"BLEU": round(bleu, 2), "with <unk>": sum("<unk>" in o for o in outputs),
            "copied": f"{copied}/{copyable}"}


# Eval settings a model name may ask for after "@".
VARIANTS = {"replace_unk": {"replace_unk": True, "ban_unk": False},
            "ban_unk": {"ban_unk": True, "replace_unk": False}}


def parse_setting(text: str) -> tuple[str, object]:
    """eval.KEY=VALUE, read as a config override is -> (KEY, value)."""
    key, value = parse_override(text)
    return key.removeprefix("eval."), value


def parse_model(text: str) -> tuple[str, Path, dict[str, bool]]:
    """NAME=CHECKPOINT[@VARIANT] -> (name, checkpoint, eval settings)."""
    name, _, rest = text.partition("=")
    checkpoint, _, variant = rest.partition("@")
    return name, Path(checkpoint), VARIANTS[variant] if variant else {}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="+", metavar="NAME=CHECKPOINT[@VARIANT]",
                        help=f"variants: {', '.join(VARIANTS)}")
    parser.add_argument("--shared", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--beam", type=int, default=5)
    parser.add_argument("--set", action="append", default=[], metavar="eval.KEY=VALUE",
                        help="an eval setting for every model (a variant's settings win)")
    args = parser.parse_args()
    shared_settings = dict(map(parse_setting, args.set))
    torch.set_num_threads(2)
    raw = args.shared.resolve() / "multi30k"
    rare, common = split_by_rarity((raw / "train.de").read_text().splitlines(),
                                   (raw / "val.de").read_text().splitlines(),
                                   (raw / "val.en").read_text().splitlines())
    rows = []
    for name, checkpoint, settings in map(parse_model, args.models):
        outputs = translate_all(checkpoint, {**shared_settings, **settings},
                                [s.source for s in rare + common],
                                args.beam)
        rare_scores = scores(rare, outputs[: len(rare)])
        rows.append({"model": name, "rare-word slice BLEU": rare_scores["BLEU"],
                     "rest of val BLEU": scores(common, outputs[len(rare):])["BLEU"],
                     "slice outputs with <unk>": rare_scores["with <unk>"],
                     "copyable rare words copied": rare_scores["copied"]})
        print(rows[-1], flush=True)
    notes = (f"Multi30k val: {len(rare)} of {len(rare) + len(common)} sentences hold a source "
             f"word (Moses token) seen fewer than {MIN_COUNT} times in training, "
             f"{sum(len(s.rare) for s in rare)} such words; {sum(len(s.copyable) for s in rare)} "
             "of them stand in the reference as they are (names, numbers), the copyable ones. "
             f"Beam {args.beam}, sacrebleu corpus BLEU (13a, cased) of detokenised output."
             + (f" Settings: {' '.join(args.set)}." if args.set else ""))
    print(append_section("Multi30k rare-word slice (val, CPU)", rows, notes))


if __name__ == "__main__":
    main()

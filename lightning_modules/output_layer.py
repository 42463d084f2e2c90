"""The softmax layer of a model that predicts tokens: hidden state -> vocabulary logits.

Tied (Press & Wolf 2017), its weight is the embedding matrix of the tokens it predicts.
When the hidden state is wider than the embedding, a linear projection to the embedding's
width comes first, as fairseq's LSTM decoder does with `out_embed_dim`: tying then works at
any size, and the softmax costs embedding_dim instead of hidden_size multiply-adds per
vocabulary entry, the largest matrix product of a word-level model.
"""

from __future__ import annotations

from torch import nn


def output_layer(hidden_size: int, embedding: nn.Embedding, tie_weights: bool) -> nn.Module:
    """Logits over embedding's vocabulary from hidden_size-wide states."""
    vocab_size, embedding_dim = embedding.weight.shape
    if not tie_weights:
        return nn.Linear(hidden_size, vocab_size)
    softmax = nn.Linear(embedding_dim, vocab_size)
    softmax.weight = embedding.weight
    if embedding_dim == hidden_size:
        return softmax
    return nn.Sequential(nn.Linear(hidden_size, embedding_dim), softmax)

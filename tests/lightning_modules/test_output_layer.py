import torch
from torch import nn

from orchestrator.lightning_modules.output_layer import output_layer


def test_tied_softmax_is_the_embedding_matrix_and_trains_it():
    embedding = nn.Embedding(7, 4)
    layer = output_layer(4, embedding, tie_weights=True)
    assert isinstance(layer, nn.Linear) and layer.weight is embedding.weight
    hidden = torch.randn(3, 4)
    assert torch.allclose(layer(hidden), hidden @ embedding.weight.T + layer.bias)
    layer(hidden).sum().backward()
    assert embedding.weight.grad is not None and embedding.weight.grad.abs().sum() > 0


def test_a_wider_hidden_state_is_projected_to_the_embedding_width_before_the_tied_softmax():
    embedding = nn.Embedding(7, 4)
    layer = output_layer(10, embedding, tie_weights=True)
    projection, softmax = layer
    assert (projection.in_features, projection.out_features) == (10, 4)
    assert softmax.weight is embedding.weight
    hidden = torch.randn(3, 10)
    expected = projection(hidden) @ embedding.weight.T + softmax.bias
    assert torch.allclose(layer(hidden), expected)
    untied = output_layer(10, embedding, tie_weights=False)
    assert untied.weight.shape == (7, 10) and untied.weight is not embedding.weight

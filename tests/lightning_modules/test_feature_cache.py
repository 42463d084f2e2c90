"""A frozen encoder's features are computed once per distinct image and are exactly the
encoder's own output."""

from __future__ import annotations

import torch
from torch import nn

from orchestrator.lightning_modules.feature_cache import FeatureCache


class CountingEncoder(nn.Module):
    """A fixed conv that counts the images it was asked to encode."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(3, 4, 3, stride=2)
        self.images_seen = 0

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        self.images_seen += len(images)
        return self.conv(images)


def test_each_distinct_image_is_encoded_once_and_features_match() -> None:
    encoder, cache = CountingEncoder(), FeatureCache()
    images = torch.rand(6, 3, 16, 16)

    first = cache.encode(encoder, images[:4])
    second = cache.encode(encoder, images[2:])  # two seen, two new
    third = cache.encode(encoder, images.flip(0))  # every one seen, in another order

    assert encoder.images_seen == 6
    assert (cache.hits, cache.misses, len(cache)) == (8, 6, 6)
    expected = encoder.conv(images).detach()
    assert torch.allclose(first, expected[:4])
    assert torch.allclose(second, expected[2:])
    assert torch.allclose(third, expected.flip(0))


def test_one_changed_pixel_is_a_new_image() -> None:
    encoder, cache = CountingEncoder(), FeatureCache()
    image = torch.rand(1, 3, 16, 16)
    changed = image.clone()
    changed[0, 1, 5, 5] += 0.5

    cache.encode(encoder, image)
    features = cache.encode(encoder, changed)

    assert encoder.images_seen == 2
    assert torch.allclose(features, encoder.conv(changed).detach())


def test_past_the_memory_budget_features_are_computed_not_stored() -> None:
    encoder = CountingEncoder()
    one_image_bytes = 4 * 7 * 7 * 4  # (4, 7, 7) float32
    cache = FeatureCache(max_bytes=2 * one_image_bytes)
    images = torch.rand(3, 3, 16, 16)

    cache.encode(encoder, images)
    cache.encode(encoder, images)

    assert len(cache) == 2
    assert encoder.images_seen == 4  # the third image twice

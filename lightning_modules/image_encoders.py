"""CNN image encoders by name: images (B, 3, H, W) -> a feature map (B, C, h, w).

`small_cnn` is built in and runs anywhere. The ResNets come from torchvision when it is
installed, with weights from a local file (nothing is downloaded at run time). A frozen
encoder keeps its batch-norm statistics too (it stays in eval mode while training).
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn


class SmallCNN(nn.Module):
    """Three blocks of 3x3 conv, batch norm, ReLU and 2x2 max pool: 64x64 -> an 8x8 map."""

    def __init__(self, channels: tuple[int, ...] = (32, 64, 128)):
        super().__init__()
        blocks: list[nn.Module] = []
        previous = 3
        for width in channels:
            blocks += [nn.Conv2d(previous, width, 3, padding=1, bias=False),
                       nn.BatchNorm2d(width), nn.ReLU(inplace=True), nn.MaxPool2d(2)]
            previous = width
        self.layers = nn.Sequential(*blocks)
        self.out_channels = previous

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.layers(images)  # (B, C, H/8, W/8)


def has_torchvision() -> bool:
    return importlib.util.find_spec("torchvision") is not None


def _small_cnn(weights: str | None) -> tuple[nn.Module, int]:
    net = SmallCNN()
    if weights:
        net.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
    return net, net.out_channels


def _resnet(name: str) -> Callable[[str | None], tuple[nn.Module, int]]:
    def build(weights: str | None) -> tuple[nn.Module, int]:
        if not has_torchvision():
            raise ValueError(f"encoder {name} needs torchvision (pip install torchvision), "
                             "or use encoder small_cnn")
        import torchvision

        net = getattr(torchvision.models, name)(weights=None)
        if weights:
            net.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
        # everything up to the last residual stage: the spatial map, before pooling
        return nn.Sequential(*list(net.children())[:-2]), net.fc.in_features

    return build


ENCODERS: dict[str, Callable[[str | None], tuple[nn.Module, int]]] = {
    "small_cnn": _small_cnn,
    "resnet18": _resnet("resnet18"),
    "resnet34": _resnet("resnet34"),
    "resnet50": _resnet("resnet50"),
}


class ImageEncoder(nn.Module):
    """A named backbone, optionally with weights from a file and frozen."""

    def __init__(self, name: str, weights: str | None = None, freeze: bool = False):
        super().__init__()
        if weights and not Path(weights).is_file():
            raise ValueError(f"encoder weights {weights} do not exist")
        self.backbone, self.out_channels = ENCODERS[name](weights)
        self.frozen = freeze
        if freeze:
            self.backbone.requires_grad_(False)

    def train(self, mode: bool = True) -> ImageEncoder:
        super().train(mode)
        if self.frozen:
            self.backbone.eval()
        return self

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.backbone(images)  # (B, C, h, w)

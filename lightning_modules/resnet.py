"""ResNet-18/34/50 (He et al. 2016) in torchvision's module layout, without torchvision.

Every parameter and buffer has the name and shape torchvision's `resnet18/34/50` give it
(`conv1`, `bn1`, `layer1`..`layer4` of blocks `N.conv1`/`N.bn1`/.../`N.downsample.0`/`.1`,
`fc`), so a state dict saved from torchvision - ImageNet weights a user already has - loads
with `strict=True` here. Like torchvision (the "v1.5" variant), a Bottleneck strides in its
3x3 conv, not its first 1x1. Input: ImageNet mean/std normalisation, as torchvision's weights
expect.
"""

from __future__ import annotations

import torch
from torch import nn


def _conv3x3(in_channels: int, out_channels: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)


def _conv1x1(in_channels: int, out_channels: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False)


class BasicBlock(nn.Module):
    """Two 3x3 convs and a residual (ResNet-18/34)."""

    expansion = 1

    def __init__(self, in_channels: int, width: int, stride: int = 1,
                 downsample: nn.Module | None = None):
        super().__init__()
        self.conv1 = _conv3x3(in_channels, width, stride)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = _conv3x3(width, width)
        self.bn2 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        hidden = self.relu(self.bn1(self.conv1(inputs)))
        hidden = self.bn2(self.conv2(hidden))
        shortcut = inputs if self.downsample is None else self.downsample(inputs)
        return self.relu(hidden + shortcut)


class Bottleneck(nn.Module):
    """1x1 reduce, 3x3 (strided), 1x1 expand x4, and a residual (ResNet-50)."""

    expansion = 4

    def __init__(self, in_channels: int, width: int, stride: int = 1,
                 downsample: nn.Module | None = None):
        super().__init__()
        self.conv1 = _conv1x1(in_channels, width)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = _conv3x3(width, width, stride)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = _conv1x1(width, width * self.expansion)
        self.bn3 = nn.BatchNorm2d(width * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        hidden = self.relu(self.bn1(self.conv1(inputs)))
        hidden = self.relu(self.bn2(self.conv2(hidden)))
        hidden = self.bn3(self.conv3(hidden))
        shortcut = inputs if self.downsample is None else self.downsample(inputs)
        return self.relu(hidden + shortcut)


Block = type[BasicBlock] | type[Bottleneck]


class ResNet(nn.Module):
    """The ImageNet classifier; `features` is the last stage's map before pooling, stride 32
    (224 x 224 -> 512 x 7 x 7 for 18/34, 2048 x 7 x 7 for 50)."""

    def __init__(self, block: Block, depths: tuple[int, int, int, int],
                 num_classes: int = 1000):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        self.in_channels = 64
        self.layer1 = self._stage(block, 64, depths[0], stride=1)
        self.layer2 = self._stage(block, 128, depths[1], stride=2)
        self.layer3 = self._stage(block, 256, depths[2], stride=2)
        self.layer4 = self._stage(block, 512, depths[3], stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.out_channels = 512 * block.expansion
        self.fc: nn.Module = nn.Linear(self.out_channels, num_classes)

    def _stage(self, block: Block, width: int, depth: int, stride: int) -> nn.Sequential:
        """`depth` blocks; the first changes size/width, through a 1x1 projection shortcut."""
        downsample = None
        if stride != 1 or self.in_channels != width * block.expansion:
            downsample = nn.Sequential(
                _conv1x1(self.in_channels, width * block.expansion, stride),
                nn.BatchNorm2d(width * block.expansion))
        blocks = [block(self.in_channels, width, stride, downsample)]
        self.in_channels = width * block.expansion
        blocks += [block(self.in_channels, width) for _ in range(depth - 1)]
        return nn.Sequential(*blocks)

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) ImageNet-normalised -> (B, out_channels, ~H/32, ~W/32)."""
        hidden = self.maxpool(self.relu(self.bn1(self.conv1(images))))
        return self.layer4(self.layer3(self.layer2(self.layer1(hidden))))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(self.avgpool(self.features(images)), 1))

    def remove_classifier(self) -> None:
        """Drop the ImageNet head (after loading weights): an encoder never uses it, and
        parameters outside the graph would stall DistributedDataParallel."""
        self.fc = nn.Identity()


def resnet18(num_classes: int = 1000) -> ResNet:
    """torchvision's resnet18: (2, 2, 2, 2) basic blocks."""
    return ResNet(BasicBlock, (2, 2, 2, 2), num_classes)


def resnet34(num_classes: int = 1000) -> ResNet:
    """torchvision's resnet34: (3, 4, 6, 3) basic blocks."""
    return ResNet(BasicBlock, (3, 4, 6, 3), num_classes)


def resnet50(num_classes: int = 1000) -> ResNet:
    """torchvision's resnet50: (3, 4, 6, 3) bottlenecks."""
    return ResNet(Bottleneck, (3, 4, 6, 3), num_classes)

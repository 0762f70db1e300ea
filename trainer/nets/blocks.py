"""Building blocks shared by SD-HRNet and the HRNetV2 teacher.

Convolutions followed by BatchNorm carry no bias (BN's shift makes it redundant), except in the
heatmap head, which keeps the biases of the official HRNetV2 head so that the counts match.
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


def conv_bn(cin: int, cout: int, kernel: int = 3, stride: int = 1, relu: bool = True, groups: int = 1) -> nn.Sequential:
    layers: list[nn.Module] = [
        nn.Conv2d(cin, cout, kernel, stride=stride, padding=kernel // 2, groups=groups, bias=False),
        nn.BatchNorm2d(cout),
    ]
    if relu:
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


class MBConv(nn.Module):
    """Mobile inverted bottleneck with kernel 3 and expansion 1: with expansion 1 there is no
    1x1 expansion conv, only depthwise 3x3 (+BN+ReLU6) and a linear 1x1 projection (+BN)."""

    def __init__(self, cin: int, cout: int | None = None, stride: int = 1):
        super().__init__()
        cout = cin if cout is None else cout
        self.depthwise = nn.Sequential(
            nn.Conv2d(cin, cin, 3, stride=stride, padding=1, groups=cin, bias=False),
            nn.BatchNorm2d(cin),
            nn.ReLU6(inplace=True),
        )
        self.project = conv_bn(cin, cout, kernel=1, relu=False)
        self.residual = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.project(self.depthwise(x))
        return x + y if self.residual else y


def mbconv_stack(channels: int, count: int) -> nn.Sequential:
    return nn.Sequential(*[MBConv(channels) for _ in range(count)])


def downsample_chain(cin: int, cout: int, steps: int) -> nn.Sequential:
    """HRNet-style downsampling: `steps` stride-2 3x3 convs; intermediate steps keep the input
    width and end in ReLU, the last one maps to the target width and stays linear (the fusion
    applies the non-linearity after the sum)."""
    if steps < 1:
        raise ValueError("a downsampling chain needs at least one step")
    layers = [conv_bn(cin, cin, 3, stride=2, relu=True) for _ in range(steps - 1)]
    layers.append(conv_bn(cin, cout, 3, stride=2, relu=False))
    return nn.Sequential(*layers)


class Upsample(nn.Module):
    """1x1 conv + BN to the target width, then bilinear upsampling by a fixed power of two.
    A fixed factor (instead of a runtime size) keeps the ONNX graph free of shape arithmetic."""

    def __init__(self, cin: int, cout: int, factor: int, mode: str = "bilinear"):
        super().__init__()
        self.conv = conv_bn(cin, cout, kernel=1, relu=False)
        self.factor = factor
        self.mode = mode

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(x)
        if self.mode == "bilinear":
            return F.interpolate(x, scale_factor=float(self.factor), mode="bilinear", align_corners=False)
        return F.interpolate(x, scale_factor=float(self.factor), mode=self.mode)


def branch_transform(cin: int, cout: int, src_level: int, dst_level: int, up_mode: str = "bilinear") -> nn.Module:
    """T(x) from a branch at resolution 1/(4*2**src_level) to one at 1/(4*2**dst_level)."""
    if src_level == dst_level:
        if cin != cout:
            raise ValueError("same-resolution transform between different widths")
        return nn.Identity()
    if src_level < dst_level:
        return downsample_chain(cin, cout, dst_level - src_level)
    return Upsample(cin, cout, 2 ** (src_level - dst_level), mode=up_mode)


def stem_transform(stem_channels: int, cout: int, dst_level: int) -> nn.Module:
    """T(x) from the 1/4-resolution stem: a 3x3 conv for branch 0, stride-2 chains below it."""
    if dst_level == 0:
        return conv_bn(stem_channels, cout, 3, stride=1, relu=False)
    return downsample_chain(stem_channels, cout, dst_level)


class Stem(nn.Module):
    """Two stride-2 3x3 convs to 1/4 resolution, then `blocks` MBConvs (the paper's stage 1)."""

    def __init__(self, channels: int = 64, blocks: int = 4):
        super().__init__()
        self.conv1 = conv_bn(3, channels, 3, stride=2)
        self.conv2 = conv_bn(channels, channels, 3, stride=2)
        self.blocks = mbconv_stack(channels, blocks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(self.conv2(self.conv1(x)))


class HeatmapHead(nn.Module):
    """HRNetV2 head: upsample every branch to 1/4, concatenate, 1x1 conv (C->C)+BN+ReLU, 1x1 conv to M.

    `levels` gives the resolution level of each incoming branch in concatenation order."""

    def __init__(self, widths: list[int], levels: list[int], num_landmarks: int):
        super().__init__()
        if len(widths) != len(levels) or not widths:
            raise ValueError("the head needs at least one branch, with one level per width")
        channels = sum(widths)
        self.widths = list(widths)
        self.levels = list(levels)
        self.fuse = nn.Sequential(
            nn.Conv2d(channels, channels, 1),
            nn.BatchNorm2d(channels),
            nn.ReLU(inplace=True),
        )
        self.classifier = nn.Conv2d(channels, num_landmarks, 1)

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        upsampled = [
            x if level == 0 else F.interpolate(x, scale_factor=float(2 ** level), mode="bilinear", align_corners=False)
            for x, level in zip(features, self.levels)
        ]
        x = upsampled[0] if len(upsampled) == 1 else torch.cat(upsampled, dim=1)
        return self.classifier(self.fuse(x))


# Networks run channels-last: at one CPU thread it trains the supernet 1.35x and S-HRNet 1.15x faster
# than NCHW (bench/train_speed.py), and NCHW depthwise convolutions degrade far worse when threads compete
# for cores. The conversion is free on GPUs and absent from the ONNX graph. Benchmarks may switch it.
MEMORY_FORMAT = torch.channels_last


def to_channels_last(x: torch.Tensor) -> torch.Tensor:
    return x.contiguous(memory_format=MEMORY_FORMAT)

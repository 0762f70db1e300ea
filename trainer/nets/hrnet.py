"""HRNetV2-W18, the distillation teacher: the standard HRNet (Bottleneck layer1, BasicBlock stages
with 1/1/4/3 modules, widths 18/36/72/144) with the HRNetV2 heatmap head. Cross-branch fusion
upsamples with nearest neighbour as in the official HRNet code."""
from __future__ import annotations

import torch
from torch import nn

from .blocks import HeatmapHead, conv_bn, downsample_chain, to_channels_last

W18 = (18, 36, 72, 144)
MODULES = (1, 4, 3)  # stages 2, 3, 4 (stage 1 is layer1)
BLOCKS = 4


class BasicBlock(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.conv1 = conv_bn(channels, channels, 3)
        self.conv2 = conv_bn(channels, channels, 3, relu=False)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(x + self.conv2(self.conv1(x)))


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, cin: int, planes: int):
        super().__init__()
        cout = planes * self.expansion
        self.body = nn.Sequential(
            conv_bn(cin, planes, 1),
            conv_bn(planes, planes, 3),
            conv_bn(planes, cout, 1, relu=False),
        )
        self.shortcut = nn.Identity() if cin == cout else conv_bn(cin, cout, 1, relu=False)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.shortcut(x) + self.body(x))


class _Upsample(nn.Module):
    def __init__(self, cin: int, cout: int, factor: int):
        super().__init__()
        self.conv = conv_bn(cin, cout, 1, relu=False)
        self.up = nn.Upsample(scale_factor=float(factor), mode="nearest")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.up(self.conv(x))


class HRModule(nn.Module):
    """BasicBlocks on every branch, then full all-to-all fusion (sum + ReLU)."""

    def __init__(self, widths: tuple[int, ...]):
        super().__init__()
        self.branches = nn.ModuleList(nn.Sequential(*[BasicBlock(w) for _ in range(BLOCKS)]) for w in widths)
        self.fuse = nn.ModuleList()
        for k, wk in enumerate(widths):
            row = nn.ModuleList()
            for j, wj in enumerate(widths):
                if j == k:
                    row.append(nn.Identity())
                elif j < k:
                    row.append(downsample_chain(wj, wk, k - j))
                else:
                    row.append(_Upsample(wj, wk, 2 ** (j - k)))
            self.fuse.append(row)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, xs: list[torch.Tensor]) -> list[torch.Tensor]:
        xs = [branch(x) for branch, x in zip(self.branches, xs)]
        out = []
        for row in self.fuse:
            y = row[0](xs[0])
            for t, x in zip(row[1:], xs[1:]):
                y = y + t(x)
            out.append(self.relu(y))
        return out


class HRNetV2(nn.Module):
    def __init__(self, num_landmarks: int, widths: tuple[int, ...] = W18):
        super().__init__()
        self.num_landmarks = num_landmarks
        self.stem = nn.Sequential(conv_bn(3, 64, 3, stride=2), conv_bn(64, 64, 3, stride=2))
        self.layer1 = nn.Sequential(Bottleneck(64, 64), *[Bottleneck(256, 64) for _ in range(3)])
        self.transitions = nn.ModuleList()
        self.stages = nn.ModuleList()
        prev = (256,)
        for n, modules in enumerate(MODULES, start=2):
            cur = widths[:n]
            self.transitions.append(self._transition(prev, cur))
            self.stages.append(nn.Sequential(*[HRModule(cur) for _ in range(modules)]))
            prev = cur
        self.head = HeatmapHead(list(widths), list(range(len(widths))), num_landmarks)

    @staticmethod
    def _transition(prev: tuple[int, ...], cur: tuple[int, ...]) -> nn.ModuleList:
        """Width changes on existing branches and a new stride-2 branch from the lowest one."""
        layers = nn.ModuleList()
        for k, wk in enumerate(cur):
            if k < len(prev):
                layers.append(nn.Identity() if prev[k] == wk else conv_bn(prev[k], wk, 3))
            else:
                layers.append(conv_bn(prev[-1], wk, 3, stride=2))
        return layers

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        xs = [self.layer1(self.stem(to_channels_last(x)))]
        for transition, stage in zip(self.transitions, self.stages):
            xs = [t(xs[min(k, len(xs) - 1)]) for k, t in enumerate(transition)]
            for module in stage:
                xs = module(xs)
        return self.head(xs)

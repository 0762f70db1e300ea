"""SD-HRNet / HRSuperNet: an HRNet-like multi-branch network whose cross-branch edges are given by
an ArchSpec, each weighted by one learnable scalar alpha (LSFF, lightweight selective feature fusion).

Module names depend only on (stage, branch, input), never on which other edges exist, so the
state_dict of a slimmed network is a subset of its supernet's (head aside, see prune.build).
"""
from __future__ import annotations

import torch
from torch import nn

from .blocks import HeatmapHead, Stem, branch_transform, mbconv_stack, stem_transform, to_channels_last
from .spec import (
    LAST_STAGE, MBCONV_BLOCKS, STAGES, STEM, STEM_CHANNELS, WIDTHS, ArchSpec, branch_index,
    input_name, parse_input, stage_index,
)


class LSFF(nn.Module):
    """ReLU(sum_j alpha_j * T_j(x_j)) for one output branch; no ReLU when the only input is an
    identity, so that a lone same-resolution edge passes features through unchanged."""

    def __init__(self, stage: int, branch: int, inputs: dict[str, float]):
        super().__init__()
        self.transforms = nn.ModuleDict()
        self.alpha = nn.ParameterDict()
        for name, alpha in inputs.items():
            src = parse_input(name)
            if src is None:
                self.transforms[name] = stem_transform(STEM_CHANNELS, WIDTHS[branch], branch)
            else:
                self.transforms[name] = branch_transform(WIDTHS[src[1]], WIDTHS[branch], src[1], branch)
            self.alpha[name] = nn.Parameter(torch.tensor(float(alpha)))
        only = next(iter(self.transforms.values()))
        self.relu = None if len(inputs) == 1 and isinstance(only, nn.Identity) else nn.ReLU(inplace=True)

    def forward(self, features: dict[str, torch.Tensor]) -> torch.Tensor:
        y = None
        for name, transform in self.transforms.items():
            term = self.alpha[name] * transform(features[name])
            y = term if y is None else y + term
        return y if self.relu is None else self.relu(y)


class Stage(nn.Module):
    def __init__(self, stage: int, branches: dict[str, dict[str, float]]):
        super().__init__()
        self.index = stage
        self.fusions = nn.ModuleDict({b: LSFF(stage, branch_index(b), inputs) for b, inputs in branches.items()})
        blocks = MBCONV_BLOCKS if stage < LAST_STAGE else 0
        self.blocks = nn.ModuleDict({b: mbconv_stack(WIDTHS[branch_index(b)], blocks) for b in branches} if blocks else {})

    def forward(self, features: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        out = {}
        for b, fusion in self.fusions.items():
            y = fusion(features)
            if b in self.blocks:
                y = self.blocks[b](y)
            out[input_name(self.index, branch_index(b))] = y
        return out


class SDHRNet(nn.Module):
    def __init__(self, spec: ArchSpec):
        super().__init__()
        self.spec = spec
        self.num_landmarks = spec.num_landmarks
        self.stem = Stem(STEM_CHANNELS, MBCONV_BLOCKS)
        self.stages = nn.ModuleDict({s: Stage(stage_index(s), spec.stages[s]) for s in STAGES})
        final = spec.final_branches()
        self.final_names = [input_name(LAST_STAGE, branch_index(b)) for b in final]
        self.head = HeatmapHead([WIDTHS[branch_index(b)] for b in final], [branch_index(b) for b in final],
                                spec.num_landmarks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = {STEM: self.stem(to_channels_last(x))}
        for stage in self.stages.values():
            features = stage(features)
        return self.head([features[n] for n in self.final_names])

    # ---- alpha handling for the slimming trainer ----------------------------------------------
    def named_alphas(self) -> list[tuple[str, str, str, nn.Parameter]]:
        """(stage, branch, input, parameter) for every edge, in spec order."""
        return [(s, b, name, p)
                for s, stage in self.stages.items()
                for b, fusion in stage.fusions.items()
                for name, p in fusion.alpha.items()]

    def alpha_parameters(self) -> list[nn.Parameter]:
        return [p for *_, p in self.named_alphas()]

    def weight_parameters(self) -> list[nn.Parameter]:
        alpha_ids = {id(p) for p in self.alpha_parameters()}
        return [p for p in self.parameters() if id(p) not in alpha_ids]

    def alpha_l1(self) -> torch.Tensor:
        """sum |alpha|, the sparsity term of the slimming loss."""
        return torch.stack([p.abs() for p in self.alpha_parameters()]).sum()

    def current_spec(self) -> ArchSpec:
        stages: dict[str, dict[str, dict[str, float]]] = {s: {} for s in STAGES}
        for s, b, name, p in self.named_alphas():
            stages[s].setdefault(b, {})[name] = float(p.detach().cpu())
        return ArchSpec(self.num_landmarks, stages, name=self.spec.name)

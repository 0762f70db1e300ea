"""Parameter and multiply-add (MAC) counts of a network for one image.

MACs are counted with forward hooks on Conv2d and Linear layers only (a conv's MACs are its output
elements x in_channels/groups x kernel area); bilinear/nearest upsampling, BatchNorm, activations,
additions and alpha scaling are not counted as MACs. Parameters include everything but the alpha
factors. `macs_head` covers the heatmap head (the paper's "FLOPs" are `macs_backbone`).
"""
from __future__ import annotations

import torch
from torch import nn


def _alpha_ids(model: nn.Module) -> set[int]:
    getter = getattr(model, "alpha_parameters", None)
    return {id(p) for p in getter()} if getter else set()


def count_params(model: nn.Module) -> int:
    alpha = _alpha_ids(model)
    return sum(p.numel() for p in model.parameters() if id(p) not in alpha)


def _layer_macs(module: nn.Module, output: torch.Tensor) -> int:
    per_image = output[0].numel()
    if isinstance(module, nn.Conv2d):
        kh, kw = module.kernel_size
        return per_image * (module.in_channels // module.groups) * kh * kw
    return per_image * module.in_features


def complexity(model: nn.Module, input_size: int = 256) -> dict[str, int]:
    """{"params", "macs", "macs_head", "macs_backbone"} for one input_size x input_size image."""
    if input_size % 32:
        raise ValueError(f"input size must be divisible by 32, got {input_size}")
    params = count_params(model)
    # one real batch-1 pass is faster than a meta-device pass (meta ops dispatch slowly) and needs
    # no copy; eval mode keeps BatchNorm statistics untouched, and the modes are restored after.
    head = getattr(model, "head", None)
    head_modules = {id(m) for m in head.modules()} if head is not None else set()
    totals = {"macs": 0, "macs_head": 0}

    def hook(module, _inputs, output):
        macs = _layer_macs(module, output)
        totals["macs"] += macs
        if id(module) in head_modules:
            totals["macs_head"] += macs

    modes = {m: m.training for m in model.modules()}
    first = next(model.parameters(), None)
    device = first.device if first is not None else torch.device("cpu")
    dtype = first.dtype if first is not None and first.is_floating_point() else torch.float32
    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    try:
        model.eval()
        with torch.no_grad():
            model(torch.zeros(1, 3, input_size, input_size, device=device, dtype=dtype))
    finally:
        for h in handles:
            h.remove()
        for m, training in modes.items():
            m.train(training)
    return {
        "params": params,
        "macs": totals["macs"],
        "macs_head": totals["macs_head"],
        "macs_backbone": totals["macs"] - totals["macs_head"],
    }

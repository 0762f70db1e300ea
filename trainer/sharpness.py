"""Sharpness-aware minimisation (Foret et al., 2021) for the distillation students (cfg.sam_rho).

Each update takes the gradient at weights moved uphill by rho along the normalised gradient, so the students
settle where the loss is flat around them rather than merely low: a self-distillation round that restarts from
the served model at a low learning rate has found no lower point for ten rounds, and a flatter one is what
moving averages and soups bought on occluded faces.
"""
from __future__ import annotations

import contextlib

import torch

_BATCH_NORMS = (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d, torch.nn.BatchNorm3d, torch.nn.SyncBatchNorm)


@contextlib.contextmanager
def ascended(models: list[torch.nn.Module], rho: float):
    """Within the block each model's weights sit rho (in L2 over that model's gradient) uphill, and its BN layers
    leave their running statistics alone, so the second forward pass of the step leaves no trace but its gradient;
    afterwards the weights are back where they were. Call with the first pass's gradients in `.grad`."""
    moved: list[tuple[list[torch.Tensor], list[torch.Tensor]]] = []
    momenta: list[tuple[torch.nn.Module, float | None]] = []
    with torch.no_grad():
        for model in models:
            params = [p for p in model.parameters() if p.grad is not None]
            if not params:
                continue
            norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(p.grad) for p in params]))
            # a tensor scale, not .item(): a GPU would otherwise wait for the host here every step
            steps = torch._foreach_mul([p.grad for p in params], rho / (norm + 1e-12))
            torch._foreach_add_(params, steps)
            moved.append((params, steps))
    for model in models:
        for layer in model.modules():
            if isinstance(layer, _BATCH_NORMS):
                momenta.append((layer, layer.momentum))
                layer.momentum = 0.0  # running = (1 - 0) * running + 0 * batch
    try:
        yield
    finally:
        for layer, momentum in momenta:
            layer.momentum = momentum
        with torch.no_grad():
            for params, steps in moved:
                torch._foreach_sub_(params, steps)

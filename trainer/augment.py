"""Random erasing for the students' occluded inputs (distillation): every sample draws its own mask, so two
calls on the same batch give the two students different occlusions."""
from __future__ import annotations

import math

import torch


def random_erasing(images: torch.Tensor, p: float = 0.5, area=(0.02, 0.1), aspect=(0.3, 3.3),
                   generator: torch.Generator | None = None, value: float | str = 0.0) -> torch.Tensor:
    """Return a copy of `images` (N, 3, H, W) where each sample, with probability p, has one rectangle of
    `area` (fraction of the image) and `aspect` (h / w, log-uniform) set to `value` (0 = the ImageNet mean
    after normalisation) or to normal noise when value == "random"."""
    if images.ndim != 4:
        raise ValueError(f"images must be (N, C, H, W), got shape {tuple(images.shape)}")
    out = images.clone()
    n, c, h, w = images.shape
    log_lo, log_hi = math.log(aspect[0]), math.log(aspect[1])

    def uniform(lo, hi):
        return lo + (hi - lo) * torch.rand((), generator=generator).item()

    for i in range(n):
        if torch.rand((), generator=generator).item() >= p:
            continue
        for _ in range(10):  # retry shapes that do not fit, as in Zhong et al.
            target = uniform(*area) * h * w
            ratio = math.exp(uniform(log_lo, log_hi))
            eh, ew = int(round(math.sqrt(target * ratio))), int(round(math.sqrt(target / ratio)))
            if 0 < eh < h and 0 < ew < w:
                top = int(torch.randint(0, h - eh + 1, (), generator=generator))
                left = int(torch.randint(0, w - ew + 1, (), generator=generator))
                if value == "random":
                    patch = torch.randn((c, eh, ew), generator=generator, dtype=out.dtype).to(out.device)
                    out[i, :, top:top + eh, left:left + ew] = patch
                else:
                    out[i, :, top:top + eh, left:left + ew] = float(value)
                break
    return out

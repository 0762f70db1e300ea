"""The students' degraded inputs (distillation): random erasing for occlusion, a random lower resolution and pixel
noise. Every sample draws its own degradation, so two calls on the same batch give the two students different ones."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from landmarks.geometry import IMAGENET_STD


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


def random_downscale(images: torch.Tensor, p: float = 0.5, min_scale: float = 0.35,
                     generator: torch.Generator | None = None) -> torch.Tensor:
    """Return a copy of `images` (N, C, S, S) where each sample, with probability p, is resampled to a side of
    uniform(min_scale, 1) * S (antialiased) and back up to S: the crop a face gets when its photo has fewer pixels
    across the face than the network's input, as in video frames or small faces of a group photo."""
    if images.ndim != 4:
        raise ValueError(f"images must be (N, C, H, W), got shape {tuple(images.shape)}")
    out = images.clone()
    size = images.shape[-2:]
    for i in range(images.shape[0]):
        if torch.rand((), generator=generator).item() >= p:
            continue
        scale = min_scale + (1.0 - min_scale) * torch.rand((), generator=generator).item()
        small = [max(1, round(side * scale)) for side in size]
        low = F.interpolate(images[i:i + 1].float(), size=small, mode="bilinear", antialias=True, align_corners=False)
        out[i] = F.interpolate(low, size=size, mode="bilinear", align_corners=False)[0].to(out.dtype)
    return out


def random_noise(images: torch.Tensor, p: float = 0.5, max_grey: float = 16.0,
                 generator: torch.Generator | None = None) -> torch.Tensor:
    """Return a copy of normalised `images` (N, 3, H, W) where each sample, with probability p, carries Gaussian
    pixel noise of a standard deviation uniform in 0..max_grey grey levels (of 255), independent per pixel and
    channel: what a small sensor records in dim light, which the 300W photos (shrunk, so their noise averaged out)
    never show."""
    if images.ndim != 4:
        raise ValueError(f"images must be (N, C, H, W), got shape {tuple(images.shape)}")
    out = images.clone()
    per_channel = torch.as_tensor(IMAGENET_STD, dtype=torch.float32).view(-1, 1, 1) * 255.0
    for i in range(images.shape[0]):
        if torch.rand((), generator=generator).item() >= p:
            continue
        grey = max_grey * torch.rand((), generator=generator).item()
        noise = torch.randn(images.shape[1:], generator=generator) * (grey / per_channel)
        out[i] = (images[i].float() + noise.to(images.device)).to(out.dtype)
    return out

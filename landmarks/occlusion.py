"""Synthetic occlusion for a robustness score in the spirit of the paper's Masked 300W test (its Table 3).

Masked 300W itself is not available here, so each face gets one opaque rectangle over part of its box, drawn
from a generator seeded by (seed, sample id): two runs with the same seed occlude the same pixels, whatever the
order or batching of the faces. The rectangle covers `area` of the box (uniform), with an aspect ratio
log-uniform in 1/2..2, and is filled with a random flat colour or random noise (half of the faces each), so the
network cannot learn to ignore one known colour.
"""
from __future__ import annotations

import math
import zlib
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Occlusion:
    seed: int = 0
    area: tuple[float, float] = (0.2, 0.4)

    def rectangle(self, box: np.ndarray, key: str) -> tuple[int, int, int, int, np.random.Generator]:
        """(x1, y1, x2, y2) of the occluder of the face `key` inside its box, and the generator for its fill."""
        rng = np.random.default_rng([self.seed, zlib.crc32(key.encode("utf-8"))])
        x1, y1, x2, y2 = (float(v) for v in box)
        w, h = max(x2 - x1, 1.0), max(y2 - y1, 1.0)
        target = rng.uniform(*self.area) * w * h
        aspect = math.exp(rng.uniform(math.log(0.5), math.log(2.0)))  # height / width
        ow, oh = min(w, math.sqrt(target / aspect)), min(h, math.sqrt(target * aspect))
        left, top = x1 + rng.uniform(0, w - ow), y1 + rng.uniform(0, h - oh)
        return int(round(left)), int(round(top)), int(round(left + ow)), int(round(top + oh)), rng

    def apply(self, image: np.ndarray, boxes: np.ndarray, keys: list[str]) -> np.ndarray:
        """A copy of the RGB image with one occluder per face box."""
        out = image.copy()
        height, width = out.shape[:2]
        for box, key in zip(boxes, keys):
            x1, y1, x2, y2, rng = self.rectangle(box, key)
            x1, y1, x2, y2 = max(0, x1), max(0, y1), min(width, x2), min(height, y2)
            if x2 <= x1 or y2 <= y1:
                continue
            if rng.random() < 0.5:
                out[y1:y2, x1:x2] = rng.integers(0, 256, size=3, dtype=np.uint8)
            else:
                out[y1:y2, x1:x2] = rng.integers(0, 256, size=(y2 - y1, x2 - x1, 3), dtype=np.uint8)
        return out

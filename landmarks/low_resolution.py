"""Faces with few pixels, for a score in the conditions of video frames, webcams and group photos.

The 300W photos are sharp (their faces are up to 200 px across), sharper than the network's input needs, while a
YouTube frame's face is often 40-100 px across. To score a model on such faces with 300W's own annotation, each
photo is shrunk (area interpolation, as a camera with fewer pixels would record it) until its largest face box is
`face_px` pixels across; the model runs on the small photo and its points are mapped back to the original pixels,
so NME compares with the same ground truth. Photos whose faces are already that small are left as they are.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

# below this a face's eyes are a pixel or two apart: no landmark is located, the score says nothing
MIN_FACE_PX = 8


@dataclass(frozen=True)
class LowResolution:
    face_px: int = 64

    def __post_init__(self):
        if not self.face_px >= MIN_FACE_PX:
            raise ValueError(f"faces must be at least {MIN_FACE_PX} pixels across, got {self.face_px}")

    def apply(self, image: np.ndarray, boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(smaller image, the boxes in its pixels, its (sx, sy) scale); `restore(points, scale)` maps points found
        in it back to the original pixels."""
        boxes = np.asarray(boxes, dtype=np.float64)
        largest = float(np.max(np.maximum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1])))
        factor = self.face_px / largest if largest > 0 else 1.0
        if factor >= 1.0:
            return image, boxes, np.ones(2)
        height, width = image.shape[:2]
        size = (max(1, round(width * factor)), max(1, round(height * factor)))
        small = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
        scale = np.array([size[0] / width, size[1] / height])
        return small, shrink(boxes.reshape(-1, 2), scale).reshape(boxes.shape), scale


# Pixel centres sit at integer coordinates, so a resize by s maps x to (x + 0.5) * s - 0.5, as cv2.resize samples:
# at s = 0.3 the half-pixel term alone is 0.35 small pixels, over 1% of a 64 px face's eye distance.
def shrink(points: np.ndarray, scale: np.ndarray) -> np.ndarray:
    return (np.asarray(points, dtype=np.float64) + 0.5) * scale - 0.5


def restore(points: np.ndarray, scale: np.ndarray) -> np.ndarray:
    return (np.asarray(points, dtype=np.float64) + 0.5) / scale - 0.5

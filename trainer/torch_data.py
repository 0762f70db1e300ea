"""torch Dataset over samples: crops decoded once into an in-memory cache, augmented on the fly.

Training: each face is cropped once, at the nominal crop's pixel density but with a margin wide enough for
the largest scale and rotation of the augmentation; every __getitem__ is then one small cv2.warpAffine from
that cached crop. Evaluation: the cache holds exactly the crop that landmarker.prepare_faces makes.
Call build_cache() before creating DataLoader workers so that forked workers share one cache.

Randomness: with `seed` given, the augmentation of item i in epoch e depends only on (seed, e, i) (call
set_epoch), so a resumed run sees the same inputs whatever the number of workers; without a seed it is drawn
from torch's RNG (different per worker, reproducible under torch.manual_seed).
"""
from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch
from torch.utils.data import Dataset

from landmarks import geometry, heatmaps
from landmarks.datasets.base import DatasetInfo, Sample, load_image


class LandmarkDataset(Dataset):
    def __init__(self, samples: list[Sample], info: DatasetInfo, input_size: int = 256, train: bool = True,
                 augment_config=None, cache_scale: float = 1.0, seed: int | None = None):
        if input_size % heatmaps.STRIDE:
            raise ValueError(f"input_size must be a multiple of {heatmaps.STRIDE}, got {input_size}")
        for s in samples[:1]:
            if len(s.landmarks) != info.num_landmarks:
                raise ValueError(f"samples have {len(s.landmarks)} landmarks but {info.name} has {info.num_landmarks}")
        self.samples = list(samples)
        self.info = info
        self.input_size = int(input_size)
        self.train = bool(train)
        self.augment = geometry.AugmentConfig.from_any(augment_config)
        self.heatmap_size = self.input_size // heatmaps.STRIDE
        self.flip_perm = info.flip_permutation
        # margin: cached side relative to the nominal crop; cache_scale < 1 trades sharpness for memory
        self.margin = self.augment.max_extent() if self.train else 1.0
        self.cache_size = (int(math.ceil(self.input_size * self.margin * cache_scale)) if self.train
                           else self.input_size)
        self._crops: list[np.ndarray | None] = [None] * len(self.samples)
        self._points: list[np.ndarray | None] = [None] * len(self.samples)
        self._matrices: list[np.ndarray | None] = [None] * len(self.samples)  # image -> cached crop
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.samples)

    def _fill(self, index: int) -> None:
        if self._crops[index] is not None:
            return
        sample = self.samples[index]
        center, scale = geometry.box_to_center_scale(sample.box)
        m = geometry.crop_matrix(center, scale * self.margin, self.cache_size)
        self._points[index] = geometry.transform_points(sample.landmarks, m)
        self._matrices[index] = m
        self._crops[index] = geometry.warp(load_image(sample), m, self.cache_size)

    def build_cache(self, threads: int = 1) -> "LandmarkDataset":
        """Decode and crop every sample now (OpenCV releases the GIL, so threads help)."""
        todo = [i for i, c in enumerate(self._crops) if c is None]
        if threads > 1:
            with ThreadPoolExecutor(threads) as pool:
                list(pool.map(self._fill, todo))
        else:
            for i in todo:
                self._fill(i)
        return self

    def cached_bytes(self) -> int:
        return sum(c.nbytes for c in self._crops if c is not None)

    def crop(self, index: int, rng: np.random.Generator | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(RGB uint8 S x S x 3, landmarks (M, 2) in input px), augmented when training."""
        image, points, _ = self.crop_with_transform(index, rng)
        return image, points

    def crop_with_transform(self, index: int, rng: np.random.Generator | None = None):
        """As crop(), plus the 2x3 matrix original image px -> input px (mirrored when flipped)."""
        self._fill(index)
        crop, points, to_cache = self._crops[index], self._points[index], self._matrices[index]
        if not self.train:
            return crop, points.copy(), to_cache.copy()
        rng = rng if rng is not None else np.random.default_rng()
        p = geometry.sample_augmentation(rng, self.augment)
        half = (self.cache_size - 1) / 2.0
        # nominal crop spans cache_size / margin cached pixels around the cache centre
        side = self.cache_size / self.margin
        scale = p.scale_factor * side / geometry.PIXEL_STD
        center = (half + p.shift[0] * side, half + p.shift[1] * side)
        m = geometry.crop_matrix(center, scale, self.input_size, p.rotation, p.flip)
        out = geometry.warp(crop, m, self.input_size)
        pts = geometry.transform_points(points, m)
        if p.flip:
            pts = pts[self.flip_perm]
        return out, pts, geometry.compose_affine(m, to_cache)

    def _rng(self, index: int) -> np.random.Generator | None:
        if not self.train:
            return None
        if self.seed is not None:
            return np.random.default_rng([self.seed, self.epoch, index])
        return np.random.default_rng(int(torch.randint(0, 2 ** 62, ()).item()))

    def __getitem__(self, index: int) -> dict:
        image, pts, transform = self.crop_with_transform(index, self._rng(index))
        target = heatmaps.render(heatmaps.input_to_heatmap(pts), self.heatmap_size, self.info.sigma)
        return {
            "image": torch.from_numpy(geometry.normalize_crop(image)),
            "heatmaps": torch.from_numpy(target),
            "landmarks": torch.from_numpy(pts.astype(np.float32)),
            "index": index,
            "transform": torch.from_numpy(transform),  # float64 2x3, original image px -> input px
        }

"""A compact, pre-cropped copy of a 300W-layout dataset, written in the same layout, so that the 300W reader,
its splits and its sample ids work on it unchanged (`--dataset 300w --data-root PACK`: dev and train-dev hold
the same faces as on the original) and training augments it exactly as it augments the original.

Each face is cut once around its landmark box, as wide as the training crop cache reaches (the 1.25x crop times
AugmentConfig.max_extent, for the largest scale and rotation) and with no more pixels than the training input
needs (downscaled with area averaging when the photo is sharper, never enlarged), then written as JPEG with its
.pts in the crop's coordinates. Outside the photo stays black, as the training crops have it. PACK/pack.json
records the source and the settings.
"""
from __future__ import annotations

import json
import math
import time
from pathlib import Path

import cv2
import numpy as np

from landmarks.datasets.base import Sample, load_image
from landmarks.datasets.w300 import SUBSETS, read_subset
from landmarks.geometry import CROP_EXPAND, PIXEL_STD, AugmentConfig, box_to_center_scale

PACK_FILE = "pack.json"
SAFETY = 1.02  # a little wider than the cache, so rounding never brings the photo's edge into a training crop


def pack_margin(augment: AugmentConfig | None = None) -> float:
    """Side of the packed region relative to the nominal crop (the 1.25x landmark box)."""
    return (augment or AugmentConfig()).max_extent() * SAFETY


def crop_face(image: np.ndarray, landmarks: np.ndarray, box: np.ndarray, input_size: int,
              margin: float) -> tuple[np.ndarray, np.ndarray]:
    """(square RGB crop, landmarks in it). An integer-aligned cut, so without downscaling the pixels are the
    photo's own; with it, one area-averaging resize."""
    center, scale = box_to_center_scale(box)
    side = int(math.ceil(PIXEL_STD * scale * margin))
    x0, y0 = (int(round(c - (side - 1) / 2.0)) for c in center)
    shift = np.array([[1.0, 0.0, -x0], [0.0, 1.0, -y0]])
    cut = cv2.warpAffine(image, shift, (side, side), flags=cv2.INTER_NEAREST, borderMode=cv2.BORDER_CONSTANT,
                         borderValue=0)
    points = landmarks - np.array([x0, y0], dtype=np.float64)
    target = int(math.ceil(input_size * margin))
    if side > target:
        cut = cv2.resize(cut, (target, target), interpolation=cv2.INTER_AREA)
        points = (points + 0.5) * (target / side) - 0.5  # pixel centres, as cv2.resize maps them
    return cut, points


def _write_pts(path: Path, points: np.ndarray) -> None:
    lines = ["version: 1", f"n_points:  {len(points)}", "{"] + [f"{x + 1:.6f} {y + 1:.6f}" for x, y in points] + ["}"]
    path.write_text("\n".join(lines) + "\n")


def _write_face(dest: Path, sample: Sample, input_size: int, margin: float, quality: int) -> int:
    crop, points = crop_face(load_image(sample), sample.landmarks, sample.box, input_size, margin)
    # the file keeps the sample id's name (its image suffix included, since the id and so the dev split depend
    # on it); the bytes are JPEG whatever the suffix, which OpenCV recognises by content
    image_path = dest / sample.sample_id
    image_path.parent.mkdir(parents=True, exist_ok=True)
    ok, data = cv2.imencode(".jpg", cv2.cvtColor(crop, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise RuntimeError(f"JPEG encoding failed for {sample.sample_id}")
    image_path.write_bytes(data.tobytes())
    _write_pts(image_path.with_suffix(".pts"), points)
    return len(data) + image_path.with_suffix(".pts").stat().st_size


def pack_300w(source: Path, dest: Path, input_size: int = 256, quality: int = 90,
              augment: AugmentConfig | None = None) -> dict:
    """Pack every face of every 300W subset found under `source` into `dest`; returns what pack.json records."""
    source, dest = Path(source), Path(dest)
    if dest.resolve() == source.resolve():
        raise ValueError("the pack must go to another folder than its source")
    margin = pack_margin(augment)
    t0 = time.perf_counter()
    counts, total_bytes = {}, 0
    for subset in SUBSETS:
        samples, skipped = read_subset(source, subset)
        for sample in samples:
            total_bytes += _write_face(dest, sample, input_size, margin, quality)
        if samples:
            counts[subset] = len(samples)
    if not counts:
        raise ValueError(f"no 300W subset with .pts files and images under {source}")
    summary = {"source": str(source.resolve()), "input_size": input_size, "margin": margin, "crop_expand": CROP_EXPAND,
               "jpeg_quality": quality, "faces": counts, "bytes": total_bytes,
               "seconds": round(time.perf_counter() - t0, 1)}
    (dest / PACK_FILE).write_text(json.dumps(summary, indent=1) + "\n")
    return summary

"""Gaussian heatmap targets and their decoding (numpy only, no torch).

Heatmaps are 1/4 of the input. Heatmap pixel j covers input pixels 4j .. 4j+3, so its centre is input
pixel 4j + 1.5 (pixel centres at integers on both grids). With this convention a horizontal flip of the
input is exactly a horizontal flip of the heatmap, which the flip test relies on.
"""
from __future__ import annotations

import numpy as np

STRIDE = 4


def input_to_heatmap(points, stride: int = STRIDE) -> np.ndarray:
    return (np.asarray(points, dtype=np.float64) - (stride - 1) / 2.0) / stride


def heatmap_to_input(points, stride: int = STRIDE) -> np.ndarray:
    return np.asarray(points, dtype=np.float64) * stride + (stride - 1) / 2.0


def render(points, size, sigma: float) -> np.ndarray:
    """Unnormalised Gaussians (value 1 at the exact sub-pixel centre) for points (M, 2) in heatmap px.
    `size` is an int or (height, width). Returns float32 (M, h, w)."""
    h, w = (size, size) if np.isscalar(size) else size
    p = np.asarray(points, dtype=np.float64)
    xs = np.arange(w, dtype=np.float64)
    ys = np.arange(h, dtype=np.float64)
    gx = np.exp(-((xs[None, :] - p[:, 0:1]) ** 2) / (2.0 * sigma ** 2))
    gy = np.exp(-((ys[None, :] - p[:, 1:2]) ** 2) / (2.0 * sigma ** 2))
    # separable: M*(h+w) exponentials instead of M*h*w
    hm = gy[:, :, None].astype(np.float32) * gx[:, None, :].astype(np.float32)
    hm[~np.all(np.isfinite(p), axis=1)] = 0.0
    return hm


REFINEMENTS = ("quarter", "gaussian")
# The log-parabola fit is exact for the Gaussian targets (round trip ~0 px) where the quarter-pixel rule of
# the paper errs by up to 1 input px per axis, a floor of ~0.006 NME on 300W; "quarter" stays selectable.
DEFAULT_REFINE = "gaussian"


def decode(heatmaps, refine: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(N, M, h, w) -> (points (N, M, 2) float64 in heatmap px, maxvals (N, M) float32).

    refine=None uses DEFAULT_REFINE.
    refine="quarter" (HRNet practice and the paper's evaluation): argmax, then a quarter pixel
    toward the larger neighbour on each axis; its error is up to 0.25 heatmap px (1 input px) per axis.
    refine="gaussian": fit a parabola to the log of the three values around the argmax on each axis,
    exact for an ideal Gaussian (the targets), clamped to half a pixel for real network outputs."""
    refine = refine or DEFAULT_REFINE
    if refine not in REFINEMENTS:
        raise ValueError(f"refine must be one of {REFINEMENTS}, got {refine!r}")
    hm = np.asarray(heatmaps, dtype=np.float32)
    if hm.ndim != 4:
        raise ValueError(f"heatmaps must be (N, M, h, w), got shape {hm.shape}")
    n, m, h, w = hm.shape
    flat = hm.reshape(n, m, h * w)
    idx = flat.argmax(axis=2)
    maxvals = np.take_along_axis(flat, idx[..., None], axis=2)[..., 0]
    px = (idx % w).astype(np.int64)
    py = (idx // w).astype(np.int64)
    ni, mi = np.meshgrid(np.arange(n), np.arange(m), indexing="ij")
    right = hm[ni, mi, py, np.minimum(px + 1, w - 1)]
    left = hm[ni, mi, py, np.maximum(px - 1, 0)]
    down = hm[ni, mi, np.minimum(py + 1, h - 1), px]
    up = hm[ni, mi, np.maximum(py - 1, 0), px]
    inner_x = (px > 0) & (px < w - 1)
    inner_y = (py > 0) & (py < h - 1)
    if refine == "quarter":
        dx = 0.25 * np.sign(right - left)
        dy = 0.25 * np.sign(down - up)
    else:
        dx = _log_parabola_offset(left, maxvals, right)
        dy = _log_parabola_offset(up, maxvals, down)
    x = px + np.where(inner_x, dx, 0.0)
    y = py + np.where(inner_y, dy, 0.0)
    return np.stack([x, y], axis=-1).astype(np.float64), maxvals


def _log_parabola_offset(before, centre, after) -> np.ndarray:
    tiny = np.float64(1e-10)
    lb, lc, la = (np.log(np.maximum(v.astype(np.float64), tiny)) for v in (before, centre, after))
    curvature = la + lb - 2.0 * lc
    with np.errstate(divide="ignore", invalid="ignore"):
        offset = np.where(curvature < -1e-12, (lb - la) / (2.0 * curvature), 0.0)
    return np.clip(np.nan_to_num(offset), -0.5, 0.5)

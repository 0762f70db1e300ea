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


REFINEMENTS = ("quarter", "gaussian", "dark")
# "dark" (the served default) smooths each heatmap before a 2-D Taylor step on its log (Zhang et al., CVPR 2020,
# "Distribution-Aware Coordinate Representation"): the network's peaks are noisy and skewed where the targets were
# ideal Gaussians, and the smoothing restores the Gaussian shape the log-quadratic fit assumes. On the 300W model
# served before it (teacher KD, MSE) it took dev NME 0.0371 -> 0.0361 and p1-ytf68 test 0.0671 -> 0.0662 against
# "gaussian" (a 1-D log-parabola per axis on the raw heatmap, exact for the targets themselves); smoothing sigmas
# 1.0 / 1.5 / 2.0 / 3.0 heatmap px gave dev 0.0362 / 0.0360 / 0.0360 / 0.0360. "quarter" (argmax + a quarter
# pixel, the paper's) errs by up to 1 input px per axis.
DEFAULT_REFINE = "dark"
DARK_SIGMA = 1.5  # heatmap px
DARK_BORDER = 3  # heatmap px


def decode(heatmaps, refine: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(N, M, h, w) -> (points (N, M, 2) float64 in heatmap px, maxvals (N, M) float32).

    refine=None uses DEFAULT_REFINE.
    refine="quarter" (HRNet practice and the paper's evaluation): argmax, then a quarter pixel
    toward the larger neighbour on each axis; its error is up to 0.25 heatmap px (1 input px) per axis.
    refine="gaussian": fit a parabola to the log of the three values around the argmax on each axis,
    exact for an ideal Gaussian (the targets), clamped to half a pixel for real network outputs.
    refine="dark": Gaussian-smooth the heatmap (DARK_SIGMA, zero outside the map), then a Newton step
    -H^-1 g on its log at the argmax (the full 2x2 Hessian), clamped to one pixel; where the log is not
    concave there it falls back to "gaussian". The confidence stays the raw peak."""
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

    def at(grid, dy, dx):
        return grid[ni, mi, np.clip(py + dy, 0, h - 1), np.clip(px + dx, 0, w - 1)]

    inner_x = (px > 0) & (px < w - 1)
    inner_y = (py > 0) & (py < h - 1)
    if refine == "quarter":
        dx = 0.25 * np.sign(at(hm, 0, 1) - at(hm, 0, -1))
        dy = 0.25 * np.sign(at(hm, 1, 0) - at(hm, -1, 0))
    else:
        dx = _log_parabola_offset(at(hm, 0, -1), maxvals, at(hm, 0, 1))
        dy = _log_parabola_offset(at(hm, -1, 0), maxvals, at(hm, 1, 0))
        if refine == "dark":
            # the blur treats the outside of the map as zero, which pulls a peak within DARK_BORDER px of the edge
            # inward (by up to 0.7 input px in tests/test_data_geometry.py without this rule); those keep the raw fit
            away = ((px >= DARK_BORDER) & (px < w - DARK_BORDER) & (py >= DARK_BORDER) & (py < h - DARK_BORDER))
            nx, ny = _newton_offset(_smoothed_log_around_peak(hm, px, py), fallback=(dx, dy))
            dx, dy = np.where(away, nx, dx), np.where(away, ny, dy)
    x = px + np.where(inner_x, dx, 0.0)
    y = py + np.where(inner_y, dy, 0.0)
    return np.stack([x, y], axis=-1).astype(np.float64), maxvals


def _smoothed_log_around_peak(hm: np.ndarray, px: np.ndarray, py: np.ndarray) -> np.ndarray:
    """log of the Gaussian-smoothed heatmap (zero outside the map) on the 3x3 pixels around each argmax,
    (N, M, 3, 3). Only the window the blur reaches is read: smoothing whole maps cost ~1.4 ms per 68-point face,
    and a constant factor on the map (its normalisation) does not move the Newton step, so none is applied."""
    r = int(np.ceil(3 * DARK_SIGMA))
    pad = r + 1
    span = np.arange(-pad, pad + 1)
    n, m, h, w = hm.shape
    rows = py[..., None] + span  # (N, M, 2 pad + 1)
    cols = px[..., None] + span
    inside = ((rows >= 0) & (rows < h))[..., :, None] & ((cols >= 0) & (cols < w))[..., None, :]
    flat_index = np.clip(rows, 0, h - 1)[..., :, None] * w + np.clip(cols, 0, w - 1)[..., None, :]
    maps = hm.reshape(n * m, h * w)
    window = np.take_along_axis(maps, flat_index.reshape(n * m, -1), axis=1).reshape(flat_index.shape) * inside
    # (3, 2 pad + 1): row i is the kernel centred on offset i - 1 from the peak
    d = span[None, :] - np.arange(-1, 2)[:, None]
    k = np.where(np.abs(d) <= r, np.exp(-(d ** 2) / (2.0 * DARK_SIGMA ** 2)), 0.0).astype(np.float32)
    return np.log(np.maximum(k @ window @ k.T, 1e-10).astype(np.float64))


def _newton_offset(log_win: np.ndarray, fallback) -> tuple[np.ndarray, np.ndarray]:
    """-H^-1 g on (N, M, 3, 3) windows of a log map centred on the peak (finite differences, exact for a
    quadratic), clamped to one pixel; `fallback` offsets where the window is not concave."""
    def at(dy, dx):
        return log_win[..., 1 + dy, 1 + dx]

    centre = at(0, 0)
    gx = 0.5 * (at(0, 1) - at(0, -1))
    gy = 0.5 * (at(1, 0) - at(-1, 0))
    hxx = at(0, 1) - 2.0 * centre + at(0, -1)
    hyy = at(1, 0) - 2.0 * centre + at(-1, 0)
    hxy = 0.25 * (at(1, 1) - at(1, -1) - at(-1, 1) + at(-1, -1))
    det = hxx * hyy - hxy ** 2
    concave = (hxx < 0) & (det > 1e-12)
    safe = np.where(concave, det, 1.0)
    dx = -(hyy * gx - hxy * gy) / safe
    dy = -(hxx * gy - hxy * gx) / safe
    return (np.where(concave, np.clip(dx, -1.0, 1.0), fallback[0]),
            np.where(concave, np.clip(dy, -1.0, 1.0), fallback[1]))


def _log_parabola_offset(before, centre, after) -> np.ndarray:
    tiny = np.float64(1e-10)
    lb, lc, la = (np.log(np.maximum(v.astype(np.float64), tiny)) for v in (before, centre, after))
    curvature = la + lb - 2.0 * lc
    with np.errstate(divide="ignore", invalid="ignore"):
        offset = np.where(curvature < -1e-12, (lb - la) / (2.0 * curvature), 0.0)
    return np.clip(np.nan_to_num(offset), -0.5, 0.5)

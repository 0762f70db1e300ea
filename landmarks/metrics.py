"""Landmark accuracy (numpy only): NME with the dataset's normaliser, FR and AUC at 0.10, the CED curve.
All values are fractions (0.0287, not 2.87 %)."""
from __future__ import annotations

import numpy as np

THRESHOLD = 0.10


def _norm_indices(info) -> tuple[int, int]:
    return tuple(getattr(info, "norm_indices", info))


def normalizer(gt, info) -> np.ndarray:
    """Per-image distance between the dataset's two reference points (outer eye corners / pupils)."""
    g = np.asarray(gt, dtype=np.float64)
    a, b = _norm_indices(info)
    return np.linalg.norm(g[:, a] - g[:, b], axis=-1)


def nme_per_image(pred, gt, info) -> np.ndarray:
    """(N, M, 2) predictions and ground truth -> (N,) mean point error / normaliser."""
    p = np.asarray(pred, dtype=np.float64)
    g = np.asarray(gt, dtype=np.float64)
    if p.shape != g.shape or p.ndim != 3 or p.shape[-1] != 2:
        raise ValueError(f"predictions {p.shape} and ground truth {g.shape} must both be (N, M, 2)")
    norm = normalizer(g, info)
    if np.any(norm <= 0):
        raise ValueError(f"{int(np.sum(norm <= 0))} image(s) have coincident normalisation points {_norm_indices(info)}")
    return np.linalg.norm(p - g, axis=-1).mean(axis=1) / norm


def failure_rate(nmes, threshold: float = THRESHOLD) -> float:
    e = np.asarray(nmes, dtype=np.float64)
    return float(np.mean(e > threshold)) if e.size else float("nan")


def auc(nmes, threshold: float = THRESHOLD) -> float:
    """Area under the CED curve on [0, threshold] divided by threshold. The CED is a step function, so the
    area is exact: each image contributes max(0, threshold - nme) / threshold."""
    e = np.asarray(nmes, dtype=np.float64)
    if not e.size:
        return float("nan")
    return float(np.mean(np.clip(threshold - e, 0.0, None)) / threshold)


def ced(nmes, threshold: float = THRESHOLD, steps: int = 101) -> tuple[np.ndarray, np.ndarray]:
    """(x, fraction of images with nme <= x) on `steps` points of [0, threshold]."""
    e = np.sort(np.asarray(nmes, dtype=np.float64))
    x = np.linspace(0.0, threshold, steps)
    y = np.searchsorted(e, x, side="right") / max(len(e), 1)
    return x, y


def summarize(nmes, threshold: float = THRESHOLD) -> dict:
    e = np.asarray(nmes, dtype=np.float64)
    if not e.size:
        return {"n": 0, "nme": None, "fr": None, "auc": None}
    return {"n": int(e.size), "nme": float(e.mean()), "fr": failure_rate(e, threshold), "auc": auc(e, threshold)}

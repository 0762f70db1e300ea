"""Pictures logged with every run: the CED curve, sample predictions and the fusion factors."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def ced_plot(curves: dict[str, tuple[np.ndarray, np.ndarray]], path: Path, title: str = "") -> Path:
    fig, ax = plt.subplots(figsize=(5, 4), dpi=100)
    for label, (x, y) in curves.items():
        ax.plot(np.asarray(x) * 100, np.asarray(y) * 100, label=label)
    ax.set_xlabel("NME (%)")
    ax.set_ylabel("images (%)")
    ax.set_xlim(0, 10)
    ax.set_ylim(0, 100)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    ax.set_title(title or "Cumulative error distribution")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def predictions_grid(images: list[np.ndarray], predictions: list[np.ndarray], truths: list[np.ndarray] | None,
                     path: Path, cols: int = 4) -> Path:
    n = len(images)
    rows = max(1, (n + cols - 1) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3 * cols, 3 * rows), dpi=80, squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i >= n:
            continue
        ax.imshow(images[i])
        if truths is not None:
            ax.scatter(truths[i][:, 0], truths[i][:, 1], s=4, c="lime", label="truth")
        ax.scatter(predictions[i][:, 0], predictions[i][:, 1], s=4, c="red", label="prediction")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def alpha_heatmap(alpha_table: list[dict[str, Any]], threshold: float, path: Path) -> Path:
    """One row per (stage, output branch), one column per input: |alpha|, pruned edges hatched out."""
    rows = sorted({(r["stage"], r["branch"]) for r in alpha_table}, key=lambda t: (int(t[0][1:]), t[1]))
    cols = sorted({r["input"] for r in alpha_table}, key=lambda c: (c != "stem", c[-2:]))
    grid = np.full((len(rows), len(cols)), np.nan)
    for r in alpha_table:
        grid[rows.index((r["stage"], r["branch"])), cols.index(r["input"])] = abs(r["alpha"])
    fig, ax = plt.subplots(figsize=(6, 0.3 * len(rows) + 1.5), dpi=100)
    im = ax.imshow(grid, aspect="auto", cmap="viridis")
    for (i, j), v in np.ndenumerate(grid):
        if not np.isnan(v) and v < threshold:
            ax.text(j, i, "x", ha="center", va="center", color="red", fontsize=8)
    ax.set_xticks(range(len(cols)), [c if c == "stem" else c[-2:] for c in cols])
    ax.set_yticks(range(len(rows)), [f"{s}{b}" for s, b in rows], fontsize=7)
    ax.set_xlabel("input branch (previous stage)")
    ax.set_title(f"|alpha| per fusion edge (x = pruned, threshold {threshold:g})")
    fig.colorbar(im, ax=ax)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def frontier_plot(rows: list[dict[str, Any]], path: Path, title: str = "") -> Path:
    """Validation NME against MACs, parameters and measured ms, one panel each, a point per budget labelled with
    it (the paper's Figure 6, which plots NME against FLOPs for a series of thresholds)."""
    panels = (("macs", "M MACs", 1e6), ("params", "M params", 1e6), ("ms", "ms / face (ONNX Runtime)", 1.0))
    fig, axes = plt.subplots(1, len(panels), figsize=(4 * len(panels), 3.6), dpi=100, sharey=True)
    for ax, (key, xlabel, scale) in zip(axes, panels):
        xs, ys = [r[key] / scale for r in rows], [r["nme"] * 100 for r in rows]
        ax.plot(xs, ys, "o", label="fp32")
        for x, y, r in zip(xs, ys, rows):
            ax.annotate(r["label"], (x, y), textcoords="offset points", xytext=(3, 3), fontsize=7)
        int8 = [r for r in rows if "int8_nme" in r]
        if int8:  # same parameters and MACs, their own latency
            ax.plot([r["int8_ms" if key == "ms" else key] / scale for r in int8], [r["int8_nme"] * 100 for r in int8],
                    "x", label="int8")
        ax.set_xlabel(xlabel)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("val NME (%)")
    if any("int8_nme" in r for r in rows):
        axes[0].legend(fontsize=7)
    fig.suptitle(title or "Accuracy-cost frontier")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path

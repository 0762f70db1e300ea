"""The precision floor of the heatmap codec: NME of the ground truth itself after encoding it as training
targets and decoding it with the served decoder, per input size (heatmaps at 1/4 of the crop).

If a 32x32 heatmap (128 px input) were what limits precision, this floor would be a sizeable fraction of the
models' NME; it is what a perfect network would score at that size. The paper's quarter-pixel rule is shown
beside the served DARK decoder.

    .venv/bin/python bench/heatmap_floor.py [--sizes 128 192 256] [--split dev]
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from landmarks.datasets import DATASETS, load_samples
from trainer.torch_data import LandmarkDataset
from landmarks.scoring import score_predictions
from landmarks.landmarker import heatmaps_to_landmarks

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "300w"


def floor(size: int, split: str, root: Path, refine: str | None) -> dict:
    info = DATASETS["300w"]
    samples = load_samples("300w", root, split)
    ds = LandmarkDataset(samples, info, size, train=False, seed=0)
    items = [ds[i] for i in range(len(ds))]
    heatmaps = np.stack([np.asarray(it["heatmaps"]) for it in items])
    transforms = np.stack([np.asarray(it["transform"]) for it in items])
    landmarks, _ = heatmaps_to_landmarks(heatmaps, transforms, refine=refine)
    report = score_predictions(samples, info, {s.sample_id: landmarks[i] for i, s in enumerate(samples)})
    return {"input": size, "heatmap": heatmaps.shape[-1], "n": report["n"], "nme": report["nme"],
            "max": max(report["per_image"].values())}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[128, 192, 256])
    ap.add_argument("--split", default="dev")
    ap.add_argument("--data-root", type=Path, default=DATA)
    args = ap.parse_args()
    print("| input | heatmap | decoder | faces | NME of the decoded targets | worst face |\n" + "| --- " * 6 + "|")
    for size in args.sizes:
        for refine in (None, "quarter"):
            r = floor(size, args.split, args.data_root, refine)
            print(f"| {r['input']} | {r['heatmap']}x{r['heatmap']} | {refine or 'DARK (served)'} | {r['n']} "
                  f"| {r['nme']:.2e} | {r['max']:.2e} |", flush=True)


if __name__ == "__main__":
    main()

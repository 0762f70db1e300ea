"""Does distillation make students predict like their teacher? For each model, on the results table's sets
(bench/results_table.py): its NME against the labels and its distance to a reference model's predictions (the
teacher), normalised the same way (the labels' inter-ocular distance), both as means over faces.

A KD term pulls the students toward the teacher's heatmaps; this shows on which faces that pull arrived: a student
closer to the teacher where it is not closer to the labels learned what the teacher does there, right or wrong.

    SDHRNET_HOME=... .venv/bin/python bench/teacher_agreement.py --reference sdhrnet/default_model \\
        --model "KD off=<run>" --model "triple=<run>" [--json out.json]
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from results_table import TEST_SETS
from landmarks import metrics
from landmarks.datasets import get_info, load_samples
from trainer.evaluate import predict_with_model


def predictions(uri: str, test_set, info, samples) -> np.ndarray:
    by_id, _ = predict_with_model(uri, info, samples, flip_test=False, occlusion=test_set.occlusion)
    return np.stack([by_id[s.sample_id] for s in samples])


def distance(a: np.ndarray, b: np.ndarray, gt: np.ndarray, info) -> float:
    """Mean point distance between two predictions, normalised by the labels' (not b's) reference points."""
    return float((np.linalg.norm(a - b, axis=-1).mean(axis=1) / metrics.normalizer(gt, info)).mean())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reference", required=True, help="the teacher (model folder, run id, runs:/ or models:/)")
    ap.add_argument("--model", action="append", required=True, help="NAME=MODEL (repeatable)")
    ap.add_argument("--json", type=Path, help="write the figures here")
    args = ap.parse_args()
    models = dict(item.split("=", 1) for item in args.model)
    out: dict[str, dict[str, dict[str, float]]] = {}
    print("| set | model | NME to the labels | distance to the reference |")
    print("| --- | --- | --- | --- |")
    for t in TEST_SETS:
        info = get_info(t.dataset)
        samples = list(load_samples(info.name, t.root, t.split))
        gt = np.stack([s.landmarks for s in samples])
        reference = predictions(args.reference, t, info, samples)
        rows = {"reference": reference} | {name: predictions(uri, t, info, samples) for name, uri in models.items()}
        out[t.name] = {}
        for name, pred in rows.items():
            figures = {"nme": float(metrics.nme_per_image(pred, gt, info).mean()),
                       "to_reference": distance(pred, reference, gt, info)}
            out[t.name][name] = figures
            print(f"| {t.name} | {name} | {figures['nme']:.4f} | {figures['to_reference']:.4f} |", flush=True)
    if args.json:
        args.json.write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()

"""What a teacher's heatmaps offer a student: how close the teacher lands to the ground truth on the augmented
training crops the students learn from, next to the student's own error there and on the validation split.

Knowledge distillation on the same labelled images can only help through how the teacher's targets differ from
the ground truth. If the teacher fits the training crops no better than the student does, its targets carry the
teacher's own errors and the KD term pulls the student toward them. Every model runs through the served ONNX
path; points are decoded as in serving and scored with the dataset's NME (crop coordinates: NME is unchanged by
the crop's similarity transform).

    .venv/bin/python bench/teacher_targets.py --data-root ../shared/data/300w \\
        --model teacher=runs:/<teacher run id>/model_files --model student=sdhrnet/default_model --batches 20
"""
from __future__ import annotations

import argparse
import itertools

import numpy as np

from landmarks import heatmaps as hm
from landmarks.landmarker import OnnxLandmarker
from landmarks.metrics import nme_per_image
from sdhrnet.train_config import make_config
from trainer.engine import iterate, load_data
from trainer.evaluate import resolve_model


def parse_model(text: str) -> tuple[str, str]:
    name, sep, uri = text.partition("=")
    if not sep or not name or not uri:
        raise argparse.ArgumentTypeError(f"--model takes NAME=URI, got {text!r}")
    return name, uri


def crop_points(landmarker: OnnxLandmarker, images: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Network input crops -> (heatmaps, points in input px, peak values)."""
    maps = landmarker.run(images)
    points, peaks = hm.decode(maps)
    return maps, hm.heatmap_to_input(points, stride=images.shape[-1] // maps.shape[-1]), peaks


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=parse_model, action="append", required=True, help="NAME=URI (repeatable)")
    parser.add_argument("--dataset", default="300w")
    parser.add_argument("--data-root", required=True)
    parser.add_argument("--preset", default="cpu")
    parser.add_argument("--batches", type=int, default=20, help="training batches (the distillation's first epoch)")
    args = parser.parse_args()

    cfg = make_config(args.preset, args.dataset, {})
    data = load_data(args.dataset, args.data_root, cfg)
    batches = [b for _, b in itertools.islice(iterate(data.train, cfg, 0, 0), args.batches)]
    train_images = np.concatenate([b["image"].numpy() for b in batches])
    train_gt = np.concatenate([b["landmarks"].numpy() for b in batches]).astype(np.float64)
    train_maps = np.concatenate([b["heatmaps"].numpy() for b in batches])
    val_items = [data.val[i] for i in range(len(data.val))]
    val_images = np.stack([it["image"].numpy() for it in val_items])
    val_gt = np.stack([it["landmarks"].numpy() for it in val_items]).astype(np.float64)

    print(f"{len(train_images)} augmented training crops (epoch 0, seed {cfg.seed}), {len(val_images)} validation "
          f"crops, {cfg.input_size} px; NME of the decoded points against the ground truth")
    print(f"{'model':12} {'train NME':>10} {'val NME':>9} {'peak train':>11} {'heatmap MSE train':>18}")
    train_points = {}
    for name, uri in args.model:
        path, card = resolve_model(uri)
        landmarker = OnnxLandmarker(path, input_size=card.get("input_size") or cfg.input_size)
        maps, points, peaks = crop_points(landmarker, train_images)
        _, val_points, _ = crop_points(landmarker, val_images)
        train_points[name] = points
        print(f"{name:12} {nme_per_image(points, train_gt, data.info).mean():>10.4f} "
              f"{nme_per_image(val_points, val_gt, data.info).mean():>9.4f} {peaks.mean():>11.3f} "
              f"{float(((maps - train_maps) ** 2).mean()):>18.3g}")
    names = list(train_points)
    for a, b in itertools.combinations(names, 2):
        gap = nme_per_image(train_points[a], train_points[b], data.info).mean()
        print(f"{a} against {b} on the training crops: NME {gap:.4f} (normalised by {b}'s eye corners)")


if __name__ == "__main__":
    main()

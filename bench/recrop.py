"""What the second pass (`/align?recrop=true`, `sdhrnet evaluate --recrop`) gains, for boxes of several kinds.

The model learnt on crops framed by the box of the true points (1.25x its longer side). A user's box comes from a
face detector, a tracker or a hand, and frames the face differently. The second pass crops each face again at the
box of its first-pass points and runs the network once more. For each kind of box this prints the NME of one
pass, of the second pass alone and of the mean of both. Each comparison is paired face by face (share of faces
better, Wilcoxon p). It also prints the cost: landmark milliseconds per face for one pass and for two.

Box kinds: the true points' box (the benchmark protocol); the service's face detector (what `/align` without boxes
uses); every edge moved by up to 10% of the side; the true box 1.3x as large (a detector that boxes the forehead
and chin) and 0.85x as large.

    .venv/bin/python bench/recrop.py [--model sdhrnet/default_model] [--sets dev "p1-ytf68 test"] [--json out.json]
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from results_table import TEST_SETS
from trainer.evaluate import resolve_model
from landmarks import metrics
from landmarks.geometry import scale_box
from landmarks.datasets import get_info, load_samples
from landmarks.datasets.base import load_image
from landmarks.face_detector import FaceDetector, match_faces
from landmarks.landmarker import OnnxLandmarker
from landmarks.passes import eye_indices_for, merge_passes, second_pass
from landmarks.scoring import faces_by_photo
from landmarks.selection import paired

JITTER = 0.10
SCALES = {"1.3x the true box": 1.3, "0.85x the true box": 0.85}


def jittered(box: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    side = np.tile(box[2:] - box[:2], 2)
    return box + rng.uniform(-JITTER, JITTER, 4) * side


def box_kinds(samples, detector: FaceDetector, seed: int) -> dict[str, dict[str, tuple[np.ndarray, float]]]:
    """Box kind -> {sample id: (box, the crop's roll)}; a face the detector misses has no detected box."""
    rng = np.random.default_rng(seed)
    kinds = {"true points' box": {}, "face detector": {}, f"edges moved up to {JITTER:.0%}": {},
             **{name: {} for name in SCALES}}
    for s in samples:
        kinds["true points' box"][s.sample_id] = (s.box, 0.0)
        kinds[f"edges moved up to {JITTER:.0%}"][s.sample_id] = (jittered(s.box, rng), 0.0)
        for name, factor in SCALES.items():
            kinds[name][s.sample_id] = (scale_box(s.box, factor), 0.0)
    for group in faces_by_photo(samples):
        found = detector.detect(load_image(group[0]))
        for s, m in zip(group, match_faces(found.boxes, np.stack([s.box for s in group]))):
            if m is not None:
                kinds["face detector"][s.sample_id] = (found.boxes[m], float(found.rolls[m]))
    return kinds


def passes(landmarker: OnnxLandmarker, samples, boxes: dict[str, tuple[np.ndarray, float]], info
           ) -> tuple[dict, float, float]:
    """-> ({pass name: {sample id: NME}}, ms per face for one pass, for both)."""
    out = {"one pass": {}, "second pass alone": {}, "mean of both": {}}
    one_s = two_s = 0.0
    for s in samples:
        if s.sample_id not in boxes:
            continue
        image, (box, roll) = load_image(s), boxes[s.sample_id]
        box, rolls = box[None], [roll]
        t0 = time.perf_counter()
        first = landmarker.predict(image, box, rolls=rolls)
        t1 = time.perf_counter()
        plan = second_pass(first[0], box, landmarker.eye_indices, rolls=rolls)
        second = landmarker.predict(image, plan.boxes, rolls=plan.rolls)
        both = merge_passes(first, second, plan)
        t2 = time.perf_counter()
        one_s, two_s = one_s + (t1 - t0), two_s + (t2 - t0)
        for name, (pts, _) in (("one pass", first), ("second pass alone", second), ("mean of both", both)):
            out[name][s.sample_id] = float(metrics.nme_per_image(pts, s.landmarks[None], info)[0])
    n = max(1, len(out["one pass"]))
    return out, one_s / n * 1e3, two_s / n * 1e3


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="sdhrnet/default_model", help="anything `sdhrnet evaluate --model` takes")
    names = [t.name for t in TEST_SETS if not t.detected_boxes and t.occlusion is None]
    ap.add_argument("--sets", nargs="+", default=names[:1], choices=names, help="results-table test sets")
    ap.add_argument("--seed", type=int, default=0, help="the jittered boxes' seed")
    ap.add_argument("--threads", type=int, default=1, help="ONNX Runtime threads")
    ap.add_argument("--json", type=Path, help="write every figure here")
    args = ap.parse_args()
    onnx_path, card = resolve_model(args.model)
    landmarker = OnnxLandmarker(onnx_path, input_size=card.get("input_size"), threads=args.threads,
                                eye_indices=eye_indices_for(card))
    detector = FaceDetector()
    report = {}
    for t in (t for t in TEST_SETS if t.name in args.sets):
        info, samples = get_info(t.dataset), load_samples(t.dataset, t.root, t.split)
        print(f"\n{t.name} ({len(samples)} faces), {args.model}, {args.threads} thread(s)")
        print("| boxes | faces | one pass | second pass alone | mean of both | mean vs one: better, p "
              "| second vs one: better, p | ms/face one / two passes |\n|" + " --- |" * 8)
        for kind, boxes in box_kinds(samples, detector, args.seed).items():
            nmes, one_ms, two_ms = passes(landmarker, samples, boxes, info)
            mean_vs = paired([nmes["one pass"]], [nmes["mean of both"]])
            second_vs = paired([nmes["one pass"]], [nmes["second pass alone"]])
            means = {k: float(np.mean(list(v.values()))) for k, v in nmes.items()}
            report.setdefault(t.name, {})[kind] = {"nme": means, "mean_vs_one": mean_vs, "second_vs_one": second_vs,
                                                   "ms_per_face": {"one": one_ms, "two": two_ms}, "per_face": nmes}
            print(f"| {kind} | {len(nmes['one pass'])} | {means['one pass']:.5f} | {means['second pass alone']:.5f} "
                  f"| {means['mean of both']:.5f} | {mean_vs['b_better_share']:.0%}, {mean_vs['wilcoxon_p']:.2g} "
                  f"| {second_vs['b_better_share']:.0%}, {second_vs['wilcoxon_p']:.2g} | {one_ms:.2f} / {two_ms:.2f} |",
                  flush=True)
    if args.json:
        args.json.write_text(json.dumps(report, indent=1) + "\n")


if __name__ == "__main__":
    main()

"""Tilted faces: NME as the photo turns, with every crop upright (the service before tilted faces were turned) and
with crops that turn with a tilted face (landmarks.passes.TILTED: the face detector's eye keypoints for the
first pass, the first pass's eye corners for the second, and the detector's look at the box for faces the first pass
is unsure of, landmarks.passes.turn_unsure).

Each photo of the set is turned about its centre by each angle on a canvas that keeps every pixel, with its points.
Boxes:
- the true points' box (the axis-aligned box of the turned points: what a caller's tight box is). Upright: one pass
  (the default for boxes sent before tilted faces were turned) and two passes (`?recrop=true`); turned: the default
  for boxes sent now (a second pass on tilted faces, the detector's tilt for unsure ones), the same turned by the
  points only (the default before the detector was asked), and `?recrop=true`.
- the service's face detector (`/align` without boxes, two passes). Upright: the detector's box with no roll and
  an upright second pass; turned: what /align does now, and the same with the box kept where it was mapped at the
  detector's turn when another turn is tried (before the box followed the turn, Detections.framed).
Each turned rule is paired face by face with its counterpart (share of faces better, Wilcoxon p), and each rule's
landmark time and network passes per face are printed. Also printed: the
detector's tilt error (its eye keypoints against the true outer eye corners) and faces missed, its tilt error at
the true box (FaceDetector.tilt_at, what a box sent gets); with `--dlib`, dlib's HOG detector and 68-point predictor
on the faces HOG finds (bench/versus_dlib.py's tools).

    .venv/bin/python bench/rotation.py [--model sdhrnet/default_model] [--set dev] [--angles 0 15 30 45 60 90]
"""
from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np

from results_table import DEV, TEST_SETS
from trainer.evaluate import resolve_model
from landmarks import metrics
from landmarks.datasets import get_info, load_samples
from landmarks.datasets.base import load_image
from landmarks.face_detector import FaceDetector, match_faces
from landmarks.geometry import angle_difference, face_roll, landmark_box, transform_points, turn_image
from landmarks.landmarker import OnnxLandmarker
from landmarks.passes import eye_indices_for
from landmarks.selection import paired

RULES = {  # name: (box kind, eye corners known (turned crops), recrop, the detector's tilt for unsure faces)
    "true box, upright, one pass": ("true", False, False, False),
    "true box, turned by the points, default": ("true", True, None, False),
    "true box, turned, default": ("true", True, None, True),
    "true box, upright, two passes": ("true", False, True, False),
    "true box, turned, two passes": ("true", True, True, True),
    "detector, upright, two passes": ("detector", False, True, False),
    "detector, turned, box kept at other turns": ("detector, box kept", True, True, True),
    "detector, turned, two passes": ("detector", True, True, True),
}
PAIRS = [("true box, upright, one pass", "true box, turned, default"),
         ("true box, turned by the points, default", "true box, turned, default"),
         ("true box, upright, two passes", "true box, turned, two passes"),
         ("detector, upright, two passes", "detector, turned, two passes"),
         ("detector, turned, box kept at other turns", "detector, turned, two passes")]


def at_angle(samples, info, angle: float, landmarkers: dict, detector: FaceDetector, dlib_tools=None
             ) -> tuple[dict, dict]:
    """-> ({rule: {sample id: NME}}, {"tilt_error": [degrees per face found], "missed": faces not found,
    "box_tilt_error": [the detector's tilt at the true box (FaceDetector.tilt_at), degrees per face], ...}). A
    detection matches the turned face's box at IoU 0.3: a tilted face's box in its own frame overlaps the upright
    box of its turned points less than an upright face's does."""
    nmes = {rule: {} for rule in RULES}
    errors, box_errors, missed, dlib_missed = [], [], 0, 0
    cost = {rule: [] for rule in RULES}  # (ms, network passes) per face
    if dlib_tools is not None:
        nmes["dlib: HOG + its predictor"] = {}
    for s in samples:
        image, m = turn_image(load_image(s), angle)
        truth = transform_points(s.landmarks, m)
        true_box = landmark_box(truth)[None]
        true_roll = face_roll(truth, info.norm_indices)
        found = detector.detect(image)
        match = match_faces(found.boxes, true_box, min_iou=0.3)[0]
        if match is None:
            missed += 1
        else:  # the detector's own estimate, also where it is below TILTED and the crop stays upright
            errors.append(float(angle_difference(found.tilts[match], true_roll)))
        box_turn = detector.tilt_at(image, true_box[0])
        box_errors.append(math.nan if box_turn is None else float(angle_difference(box_turn.tilt, true_roll)))
        for rule, (kind, turned, recrop, ask_detector) in RULES.items():
            if kind != "true" and match is None:
                continue
            framed = None
            if kind == "true":
                box, rolls = true_box, None
            elif turned:
                face = found[[match]]  # "box kept": where the detector's turn mapped it, at every turn tried
                box, rolls, framed = face.boxes, face.rolls, face.framed if kind == "detector" else None
            else:  # the service before: the detector's box mapped with its offset upright, crops upright
                box, rolls = detector.mapping.apply(found.detector_boxes[[match]]), None
            start = time.perf_counter()
            done = landmarkers[turned].align(image, box, recrop=recrop, rolls=rolls,
                                             tilt_at=detector.tilt_at if ask_detector else None, framed=framed)
            cost[rule].append(((time.perf_counter() - start) * 1e3, int(done.passes[0])))
            nmes[rule][s.sample_id] = float(metrics.nme_per_image(done.landmarks, truth[None], info)[0])
        if dlib_tools is not None:
            hog, predictor = dlib_tools
            boxes = hog.detect(image).boxes
            found_by_hog = match_faces(boxes, true_box, min_iou=0.3)[0]
            if found_by_hog is None:
                dlib_missed += 1
            else:
                points, _ = predictor.predict(image, boxes[[found_by_hog]])
                nmes["dlib: HOG + its predictor"][s.sample_id] = float(
                    metrics.nme_per_image(points, truth[None], info)[0])
    return nmes, {"tilt_error": errors, "box_tilt_error": box_errors, "missed": missed, "dlib_missed": dlib_missed,
                  "ms_and_passes": cost}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="sdhrnet/default_model", help="anything `sdhrnet evaluate --model` takes")
    names = [t.name for t in TEST_SETS if not t.detected_boxes and t.occlusion is None and t.low_resolution is None]
    ap.add_argument("--set", default=names[0], choices=names, help="a results-table test set")
    ap.add_argument("--every", type=int, default=1, help="score every n-th face (p1-ytf68 test has 770)")
    ap.add_argument("--angles", type=float, nargs="+", default=[0, 10, 20, 30, 45, 60, 75, 90])
    ap.add_argument("--threads", type=int, default=1, help="ONNX Runtime threads")
    ap.add_argument("--dlib", action="store_true", help="also dlib's HOG detector and 68-point predictor "
                    "(bench/versus_dlib.py; pip install -e '.[compare]'), on the faces HOG finds")
    ap.add_argument("--json", type=Path, help="write every figure here")
    args = ap.parse_args()
    t = next(t for t in TEST_SETS if t.name == args.set)
    info, samples = get_info(t.dataset), load_samples(t.dataset, t.root, t.split)[::args.every]
    onnx_path, card = resolve_model(args.model)
    landmarkers = {turned: OnnxLandmarker(onnx_path, input_size=card.get("input_size"), threads=args.threads,
                                          eye_indices=eye_indices_for(card) if turned else None)
                   for turned in (False, True)}
    detector = FaceDetector()
    dlib_tools = None
    if args.dlib:
        from versus_dlib import DlibDetector, DlibLandmarker, fit_hog_mapping, predictor_path

        mapping, fitted_on = fit_hog_mapping(DEV.root, 400, 0)  # as versus_dlib.py fits it
        print(f"HOG box -> landmark box fitted on {fitted_on}", flush=True)
        dlib_tools = (DlibDetector(mapping), DlibLandmarker(predictor_path(), mapping))
    print(f"{t.name}: {len(samples)} faces, {args.model}, {args.threads} thread(s); NME by rule and angle\n")
    dlib_head = " dlib: HOG + its predictor |" if dlib_tools is not None else ""
    print("| turned by | " + " | ".join(RULES) + " | detector tilt error, mean / p90 | missed | tilt error at the true "
          "box, mean / p90 / not found |" + dlib_head + "\n|" + " --- |" * (len(RULES) + 4 + bool(dlib_tools)))
    report = {}
    for angle in args.angles:
        nmes, extra = at_angle(samples, info, angle, landmarkers, detector, dlib_tools)
        comparisons = {f"{a} -> {b}": paired([nmes[a]], [nmes[b]]) for a, b in PAIRS}
        report[str(angle)] = {"nme": {r: float(np.mean(list(v.values()))) for r, v in nmes.items()},
                              "comparisons": comparisons, "per_face": nmes, **extra}
        errors = extra["tilt_error"] or [math.nan]
        box_errors = np.asarray(extra["box_tilt_error"])
        found_at_box = box_errors[np.isfinite(box_errors)] if np.isfinite(box_errors).any() else np.array([math.nan])
        dlib_cell = ""
        if dlib_tools is not None:
            scored = nmes["dlib: HOG + its predictor"]
            mean = np.mean(list(scored.values())) if scored else math.nan
            dlib_cell = f" {mean:.4f} on {len(scored)}, missed {extra['dlib_missed']} |"
        print(f"| {angle:g} | " + " | ".join(f"{report[str(angle)]['nme'][r]:.4f}" for r in RULES)
              + f" | {np.mean(errors):.1f} / {np.percentile(errors, 90):.1f} | {extra['missed']} | "
              f"{np.mean(found_at_box):.1f} / {np.percentile(found_at_box, 90):.1f} / "
              f"{int(np.sum(~np.isfinite(box_errors)))} |{dlib_cell}",
              flush=True)
    print("\neach rule against the one it replaces, face by face: share of faces better, Wilcoxon p")
    print("| turned by | " + " | ".join(f"{a} -> {b}" for a, b in PAIRS) + " |\n|" + " --- |" * (len(PAIRS) + 1))
    for angle, r in report.items():
        print(f"| {float(angle):g} | " + " | ".join(
            f"{c['relative_change']:+.1%}, {c['b_better_share']:.0%}, {c['wilcoxon_p']:.2g}"
            for c in r["comparisons"].values()) + " |")
    print("\nlandmark time per face (ms, after the detection; one ORT thread) and mean network passes")
    print("| turned by | " + " | ".join(RULES) + " |\n|" + " --- |" * (len(RULES) + 1))
    for angle, r in report.items():
        cells = []
        for rule in RULES:
            cost = np.asarray(r["ms_and_passes"][rule]).reshape(-1, 2)
            cells.append(f"{cost[:, 0].mean():.1f}, {cost[:, 1].mean():.2f}" if len(cost) else "-")
        print(f"| {float(angle):g} | " + " | ".join(cells) + " |")
    if args.json:
        args.json.write_text(json.dumps(report, indent=1) + "\n")


if __name__ == "__main__":
    main()

"""Where the served model's points land against dlib's 68-point shape predictor, on the same faces, side by side.

dlib's `shape_predictor_68_face_landmarks.dat` (a cascade of regression trees, Kazemi and Sullivan 2014) is the free
68-point landmarker most face pipelines run. It learnt on iBUG 300-W, whose training faces include 300W's AFW and
HELEN training subsets: our dev split (helen/trainset faces we hold out) is among dlib's training faces, so dev
favours dlib. p1-ytf68 test (YouTube Faces frames) is new to both. The iBUG 300-W licence excludes commercial use,
which is why dlib's file is a bench dependency here and nothing ships it.

Three protocols, scored as the README results table scores (inter-ocular NME, FR and AUC at 0.1):
- dlib's boxes: both tools at the boxes of dlib's HOG face detector (one upsampling), on the faces it finds. dlib's
  predictor learnt on exactly these boxes; ours gets them mapped onto its own convention (the offset and scale
  between HOG boxes and the true points' box, medians fitted on train-dev faces, landmarks.face_detector.BoxMapping)
  and, as for any detector's box, the second pass.
- own detector: each tool's whole pipeline on the photo. Ours is what `/align` without boxes runs (BlazeFace, the
  landmark model, the second pass); dlib's is its HOG detector and the predictor. A face counts as found where a
  detection overlaps its true box with IoU >= 0.5.
- true points' box (the benchmark protocol): ours at the box of the true points; dlib at the HOG-shaped box that
  the fitted mapping gives for it. A box from anything but dlib's own detector: this shows how much dlib depends on
  its detector's framing, since the HOG box of a turned face is not where the points' box predicts.
Two more rows show what a caller who sends dlib's rectangles unchanged to `/align` gets, with one pass and with the
second (`?recrop=true`).

Each comparison is paired on the faces both scored (share of faces where ours is closer, one-sided Wilcoxon p each
way, since a mean can favour one tool while most faces favour the other). Speed, one
thread each (dlib runs on one), on photos decoded beforehand, each tool over all of them in turn, round after round
(`--by-photo`: taking turns photo by photo): the landmark step alone at the true points' box, and each whole
pipeline per photo.

    .venv/bin/pip install -e '.[compare]'   # requirements/compare.txt: dlib-bin, the 100 MB face_recognition_models
    .venv/bin/python bench/versus_dlib.py [--model sdhrnet/default_model] [--sets dev "p1-ytf68 test"] [--json F]
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import sys
from pathlib import Path

import cv2
import numpy as np

from detect_align import alternating, detect_then_align, fit_mapping
from results_table import DEV, P1_TEST
from trainer.evaluate import resolve_model
from landmarks.datasets import get_info, load_image, load_samples
from landmarks.face_detector import BoxMapping, Detections, FaceDetector
from landmarks.landmarker import OnnxLandmarker
from landmarks.passes import eye_indices_for
from landmarks.scoring import predict_with_landmarker, score_predictions
from landmarks.selection import paired

PREDICTOR = "shape_predictor_68_face_landmarks.dat"
HOG_UPSAMPLE = 1  # dlib's examples upsample once so that faces down to ~40 px are found
SETS = {t.name: t for t in (DEV, P1_TEST)}
INSTALL = "pip install -e '.[compare]' (requirements/compare.txt)"

try:
    import dlib
except ImportError:
    sys.exit(f"dlib is not installed: {INSTALL}")


def predictor_path() -> Path:
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None:
        sys.exit(f"face_recognition_models (dlib's trained models) is not installed: {INSTALL}")
    # its __init__ needs pkg_resources, which recent setuptools dropped: the file is read beside it instead
    return Path(spec.submodule_search_locations[0]) / "models" / PREDICTOR


class DlibDetector:
    """dlib's HOG detector behind FaceDetector's detect(): boxes in the landmark-box convention."""

    def __init__(self, mapping: BoxMapping = BoxMapping()):
        self.hog = dlib.get_frontal_face_detector()
        self.mapping = mapping

    def raw_detect(self, image: np.ndarray) -> np.ndarray:
        rects = self.hog(image, HOG_UPSAMPLE)
        return np.array([[r.left(), r.top(), r.right() + 1, r.bottom() + 1] for r in rects], float).reshape(-1, 4)

    def detect(self, image: np.ndarray, small_faces: bool = False) -> Detections:
        # dlib's pipeline has no tile search: its one upsampling (HOG_UPSAMPLE) is how it looks for small faces
        raw = self.raw_detect(image)
        return Detections(self.mapping.apply(raw), raw, np.ones(len(raw)))


class DlibLandmarker:
    """dlib's predictor behind OnnxLandmarker's predict(): landmark-convention boxes in, (N, 68, 2) points out."""

    def __init__(self, path: Path, mapping: BoxMapping):
        self.predictor = dlib.shape_predictor(str(path))
        self.mapping = mapping

    def predict(self, image, boxes, flip_test: bool = False, recrop: bool = False, rolls=None, tilt_at=None,
                framed=None):
        # dlib's rectangles are upright: a crop turned with a tilted face (rolls) has no counterpart there
        faces = []
        for x1, y1, x2, y2 in self.mapping.invert(boxes):
            rect = dlib.rectangle(round(x1), round(y1), round(x2) - 1, round(y2) - 1)
            faces.append([(p.x, p.y) for p in self.predictor(image, rect).parts()])
        points = np.asarray(faces, np.float64).reshape(-1, 68, 2)
        return points, np.ones(points.shape[:2])


def fit_hog_mapping(data_root: Path, faces: int, seed: int) -> tuple[BoxMapping, str]:
    """HOG box -> true points' box, fitted as bench/detect_align.py fits BlazeFace's, on `faces` train-dev faces."""
    samples = load_samples("300w", data_root, "train-dev")
    pick = np.random.default_rng(seed).choice(len(samples), min(faces, len(samples)), replace=False)
    mapping, matched = fit_mapping(DlibDetector().raw_detect, [samples[int(i)] for i in sorted(pick)])
    return mapping, f"{matched} of {len(pick)} train-dev faces found by HOG"


class SentAsIs:
    """The served model handed dlib's rectangles unchanged, as a caller who sends them to /align does; the faces
    are matched on the mapped boxes, so these rows score the same faces as the others."""

    def __init__(self, landmarker: OnnxLandmarker, mapping: BoxMapping):
        self.landmarker, self.mapping = landmarker, mapping

    def predict(self, image, boxes, **options):
        return self.landmarker.predict(image, self.mapping.invert(boxes), **options)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="sdhrnet/default_model", help="anything `sdhrnet evaluate --model` takes")
    ap.add_argument("--sets", nargs="+", default=list(SETS), choices=list(SETS))
    ap.add_argument("--fit-faces", type=int, default=400, help="train-dev faces the HOG box mapping is fitted on")
    ap.add_argument("--rounds", type=int, default=3, help="timing rounds over the first set's faces")
    ap.add_argument("--by-photo", action="store_true",
                    help="time the tools taking turns photo by photo rather than each over all photos in turn")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", type=Path, help="write every figure (and each face's NME) here")
    args = ap.parse_args()
    cv2.setNumThreads(1)  # BlazeFace and the crops on one thread, as dlib's detector and predictor run

    onnx_path, card = resolve_model(args.model)
    mapping, fitted_on = fit_hog_mapping(DEV.root, args.fit_faces, args.seed)
    print(f"HOG box -> landmark box: {mapping.to_dict()} ({fitted_on})", flush=True)
    ours = OnnxLandmarker(onnx_path, input_size=card.get("input_size"), threads=1, eye_indices=eye_indices_for(card))
    theirs = DlibLandmarker(predictor_path(), mapping)
    hog, blazeface = DlibDetector(mapping), FaceDetector()
    runs = {  # row -> (tool, the protocols it stands in, landmarker, predict_with_landmarker's options)
        "served model at dlib's boxes": ("served model", ("dlib's boxes",), ours, {"detector": hog, "recrop": True}),
        "served model, own detector": ("served model", ("own detector",), ours,
                                       {"detector": blazeface, "recrop": True}),
        "dlib at its own boxes (its whole pipeline)": ("dlib", ("dlib's boxes", "own detector"), theirs,
                                                       {"detector": hog}),
        "served model at the true points' box": ("served model", ("true points' box",), ours, {}),
        "dlib at the HOG-shaped true box": ("dlib", ("true points' box",), theirs, {}),
        # what a caller who sends dlib's rectangles unchanged gets, without and with `?recrop=true`
        "served model at dlib's rectangles sent as they are, one pass": ("served model", (), SentAsIs(ours, mapping),
                                                                          {"detector": hog}),
        "same, second pass": ("served model", (), SentAsIs(ours, mapping), {"detector": hog, "recrop": True}),
    }
    report = {"model": args.model, "hog_mapping": {**mapping.to_dict(), "fitted_on": fitted_on}, "sets": {}}
    for name in args.sets:
        t = SETS[name]
        info, samples = get_info(t.dataset), load_samples(t.dataset, t.root, t.split)
        print(f"\n{name} ({len(samples)} faces)\n| row | faces scored | NME | FR | AUC |\n|" + " --- |" * 5, flush=True)
        scored = {}
        for row, (tool, protocols, landmarker, options) in runs.items():
            r = score_predictions(samples, info, predict_with_landmarker(landmarker, samples, **options))
            scored.update({(tool, protocol): r for protocol in protocols})
            print(f"| {row} | {r['n']} | {r['nme']:.4f} | {r['fr']:.3f} | {r['auc']:.3f} |", flush=True)
            report["sets"].setdefault(name, {})[row] = {**{k: r[k] for k in ("n", "nme", "fr", "auc")},
                                                        "per_face": r["per_image"]}
        for protocol in ("dlib's boxes", "own detector", "true points' box"):
            sides = [scored["dlib", protocol]["per_image"]], [scored["served model", protocol]["per_image"]]
            p = paired(*sides)
            # one-sided both ways: a mean can favour one tool while most faces favour the other
            p["served_lower_p"], p["dlib_lower_p"] = (paired(*sides, alternative=a)["wilcoxon_p"]
                                                      for a in ("less", "greater"))
            print(f"{protocol}, the {p['faces']} faces both scored: served {p['nme_b']:.4f}, dlib {p['nme_a']:.4f} "
                  f"({p['relative_change']:+.1%}); served closer on {p['b_better_share']:.0%} of faces; one-sided "
                  f"Wilcoxon p {p['served_lower_p']:.2g} that served is lower, {p['dlib_lower_p']:.2g} that dlib is",
                  flush=True)
            report["sets"][name][f"paired, {protocol}"] = p
    first = SETS[args.sets[0]]
    photos = [(load_image(s), s.box) for s in load_samples(first.dataset, first.root, first.split)]
    timed = alternating({
        "served model, landmarks at the true box": lambda image, box: len(ours.predict(image, box[None])[0]),
        "dlib, landmarks at the true box": lambda image, box: len(theirs.predict(image, box[None])[0]),
        "served model, own pipeline": detect_then_align(blazeface, ours, recrop=True),
        "dlib, own pipeline": detect_then_align(hog, theirs)}, photos, args.rounds, by_photo=args.by_photo)
    turns = "photo by photo" if args.by_photo else "each over all photos in turn"
    print(f"\nms per photo ({first.name}, one face each, one thread, {args.rounds} rounds, tools {turns}):\n"
          + "\n".join(f"  {k}: {v['ms_per_image']:.2f}" for k, v in timed.items()), flush=True)
    report["speed"] = timed
    if args.json:
        args.json.write_text(json.dumps(report, indent=1) + "\n")


if __name__ == "__main__":
    main()

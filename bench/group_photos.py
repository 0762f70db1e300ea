"""Small faces in large photos: what `/align` without boxes finds with one look at the whole photo, and with the tiles
that `small_faces` adds (landmarks.face_detector.plan_looks).

    .venv/bin/python bench/group_photos.py [--faces "300w dev"|"p1-ytf68 test"] [--sizes 200 160 130 100 80 60]
        [--photos 3] [--out report.json]

There is no labelled group photo here, so each one is made of single-face photos (FACE_SETS), each scaled so
that its face's landmark box is SIZE px on its longer side and pasted into a cell of a WIDTH x HEIGHT grey canvas
(`group_photo`). Per face size, side by side on the same canvases: recall (an answered face matching a pasted face
with IoU >= 0.5), answered faces matching none (most are parts of a face: an ear, a hand; some are real faces in the
photos' backgrounds), each also as detected (before the landmark check drops the tiles' finds the network sees no face
in, landmarks.answers.non_faces), detector runs and ms of detection per photo, and the NME of the found faces'
points as `/align` answers them (the served model, second pass and tilt as for detected faces). Then the other side
of tiles: each photo, one face filling it, enlarged ENLARGE times, with and without `small_faces`: faces answered
besides its own (tiles see parts of it: an ear, a necklace), also as detected, and whether its own box stays the same.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from landmarks.answers import drop_non_faces, non_faces  # noqa: E402
from landmarks.datasets import get_info, load_image, load_samples  # noqa: E402
from landmarks.face_detector import FaceDetector, match_faces  # noqa: E402
from landmarks.landmarker import OnnxLandmarker  # noqa: E402
from landmarks.metrics import nme_per_image  # noqa: E402
from landmarks.passes import eye_indices_for, mean_confidence  # noqa: E402

DATA = REPO.parent / "shared" / "data"
# the faces pasted: 300W dev photos (held-out helen faces), or blurred, low-resolution video frames (every second
# labelled p1-ytf68 test frame)
FACE_SETS = {"300w dev": ("300w", "300w", "dev", 1), "p1-ytf68 test": ("csv", "p1-ytf68", "test", 2)}
DEFAULT_MODEL = REPO / "sdhrnet" / "default_model"
CELL = 2.2  # a cell's side in face sizes: the 300W photos here are crops of 2.2x the landmark box
ENLARGE = 4  # 440 px dev photos -> 1760 px: two levels of tiles (9 + 49)
BACKGROUND = 90


def group_photo(faces, face_px: int, width: int, height: int, rng: np.random.Generator):
    """(samples, images) of single-face photos -> (canvas (H, W, 3) uint8, landmark boxes (N, 4), landmarks (N, M, 2)):
    as many of them as fit, row by row, each scaled to a landmark box of `face_px` on its longer side and centred in
    its cell; the grid starts at a random offset so that faces fall anywhere against the detector's tiles."""
    canvas = np.full((height, width, 3), BACKGROUND, np.uint8)
    cell = int(round(face_px * CELL))
    x0, y0 = (int(v) for v in rng.integers(0, [width % cell + 1, height % cell + 1]))
    boxes, points = [], []
    cells = [(x, y) for y in range(y0, height - cell + 1, cell) for x in range(x0, width - cell + 1, cell)]
    for (cx, cy), (sample, image) in zip(cells, faces):
        side = max(sample.box[2] - sample.box[0], sample.box[3] - sample.box[1])
        f = face_px / side
        small = cv2.resize(image, None, fx=f, fy=f, interpolation=cv2.INTER_AREA)
        shift = np.array([cx + cell / 2, cy + cell / 2]) - (sample.box[:2] + sample.box[2:]) / 2 * f
        dx, dy = (int(round(v)) for v in shift)
        # the cell, clipped to the scaled photo where the photo is smaller than it
        ax1, ay1 = max(cx, dx), max(cy, dy)
        ax2, ay2 = min(cx + cell, dx + small.shape[1]), min(cy + cell, dy + small.shape[0])
        canvas[ay1:ay2, ax1:ax2] = small[ay1 - dy:ay2 - dy, ax1 - dx:ax2 - dx]
        boxes.append(sample.box * f + [dx, dy, dx, dy])
        points.append(sample.landmarks * f + [dx, dy])
    return canvas, np.asarray(boxes, np.float64).reshape(-1, 4), np.asarray(points, np.float64)


def answered(detector, landmarker, image, detections):
    """/align's answer for detected faces: (Detections kept, their landmarks, their mean heatmap peaks, the mean peaks
    of the tiles' finds the network saw no face in, which are left out: landmarks.answers.drop_non_faces)."""
    if not len(detections):
        return detections, np.zeros((0, 0, 2)), np.zeros(0), np.zeros(0)
    aligned = landmarker.align(image, detections.boxes, recrop=True, rolls=detections.rolls,
                               tilt_at=detector.tilt_at, framed=detections.framed)
    (landmarks, confidence, *_), kept = drop_non_faces(aligned, detections)
    dropped = mean_confidence(aligned.confidence)[non_faces(aligned.confidence, detections)]
    return kept, landmarks, mean_confidence(confidence), dropped


def measure(faces, detector, landmarker, face_px: int, width: int, height: int, photos: int, seed: int,
            small_faces: bool) -> dict:
    rng = np.random.default_rng(seed)
    found = found_detected = total = unmatched = unmatched_detected = looks = 0
    seconds, predicted, truth, face_peaks, dropped_peaks = [], [], [], [], []
    smallest = None
    for _ in range(photos):
        order = rng.permutation(len(faces))
        canvas, boxes, points = group_photo([faces[i] for i in order], face_px, width, height, rng)
        start = time.perf_counter()
        # faces down to 0.7x their pasted size: the detector's boxes vary around the true points' box
        detections = detector.detect(canvas, min_face_size=0.7 * face_px if small_faces else 0.0,
                                     small_faces=small_faces)
        seconds.append(time.perf_counter() - start)
        looks, smallest = detections.looks, detections.smallest_searched
        total += len(boxes)
        detected = match_faces(detections.boxes, boxes)
        found_detected += sum(m is not None for m in detected)
        unmatched_detected += len(detections) - len({m for m in detected if m is not None})
        kept, landmarks, peaks, dropped = answered(detector, landmarker, canvas, detections)
        matches = match_faces(kept.boxes, boxes)
        hit = [i for i, m in enumerate(matches) if m is not None]
        face_peaks += [peaks[matches[i]] for i in hit]
        dropped_peaks += list(dropped)
        found += len(hit)
        unmatched += len(kept) - len({m for m in matches if m is not None})
        if hit:
            predicted.append(landmarks[[matches[i] for i in hit]])
            truth.append(points[hit])
    nme = nme_per_image(np.concatenate(predicted), np.concatenate(truth), get_info("300w")) if predicted else []
    return {"recall": found / total, "faces": total, "unmatched": unmatched,
            "recall_detected": found_detected / total, "unmatched_detected": unmatched_detected, "looks": looks,
            "smallest_searched_px": round(float(smallest), 1), "ms_per_photo": 1e3 * float(np.median(seconds)),
            "nme_mean": float(np.mean(nme)) if len(nme) else None,
            "nme_median": float(np.median(nme)) if len(nme) else None,
            "least_sure_face": round(float(min(face_peaks)), 3) if face_peaks else None,
            "surest_dropped": round(float(max(dropped_peaks)), 3) if dropped_peaks else None}


def one_large_face(faces, detector, landmarker) -> dict:
    others = {"one look": 0, "tiles, detected": 0, "tiles": 0}
    same_box, looks, face_peaks, dropped_peaks = 0, 0, [], []
    for sample, image in faces:
        big = cv2.resize(image, None, fx=ENLARGE, fy=ENLARGE, interpolation=cv2.INTER_CUBIC)
        truth = sample.box[None] * ENLARGE
        tiles = detector.detect(big, small_faces=True)
        answer, _, peaks, dropped = answered(detector, landmarker, big, tiles)
        # the landmark check leaves what one look finds as it is
        found = {"one look": detector.detect(big), "tiles, detected": tiles, "tiles": answer}
        match = {name: match_faces(d.boxes, truth)[0] for name, d in found.items()}
        for name, d in found.items():
            others[name] += len(d) - (match[name] is not None)
        if match["tiles"] is not None:
            face_peaks.append(peaks[match["tiles"]])
        dropped_peaks += list(dropped)
        if match["one look"] is not None and match["tiles"] is not None:
            same_box += bool(np.array_equal(found["one look"].boxes[match["one look"]],
                                            found["tiles"].boxes[match["tiles"]]))
        looks = tiles.looks
    return {"photos": len(faces), "side_px": ENLARGE * max(faces[0][1].shape[:2]), "looks": looks,
            "other_detections": others, "face_box_unchanged": same_box,
            "least_sure_face": round(float(min(face_peaks)), 3) if face_peaks else None,
            "dropped_peaks": sorted(round(float(p), 3) for p in dropped_peaks)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-root", type=Path, default=DATA, help="the folder holding 300w/ and p1-ytf68/")
    parser.add_argument("--faces", choices=sorted(FACE_SETS), default="300w dev")
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL)
    parser.add_argument("--sizes", type=int, nargs="+", default=[200, 160, 130, 100, 80, 60])
    parser.add_argument("--width", type=int, default=1600)
    parser.add_argument("--height", type=int, default=1000)
    parser.add_argument("--photos", type=int, default=3, help="group photos per face size")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    layout, folder, split, step = FACE_SETS[args.faces]
    samples = load_samples(layout, args.data_root / folder, split)[::step]
    faces = [(s, load_image(s)) for s in samples]
    card = json.loads((args.model / "model_card.json").read_text())
    landmarker = OnnxLandmarker(args.model / "model.onnx", input_size=card["input_size"], threads=1,
                                eye_indices=eye_indices_for(card))
    detector = FaceDetector()
    report = {}
    for size in args.sizes:
        row = {}
        for name, small_faces in (("one look", False), ("tiles", True)):
            row[name] = measure(faces, detector, landmarker, size, args.width, args.height, args.photos, args.seed,
                                small_faces)
        report[size] = row
        print(f"{size:>4} px  " + "  |  ".join(
            f"{name}: recall {r['recall']:.3f} of {r['faces']} (detected {r['recall_detected']:.3f}), unmatched "
            f"{r['unmatched']} (detected {r['unmatched_detected']}), looks {r['looks']}, "
            f"{r['ms_per_photo']:.0f} ms, NME {r['nme_mean'] if r['nme_mean'] is None else round(r['nme_mean'], 4)}, "
            f"mean peak: least sure face {r['least_sure_face']}, surest dropped {r['surest_dropped']}"
            for name, r in row.items()), flush=True)
    report["one large face"] = one_large_face(faces, detector, landmarker)
    print("one face filling the photo, enlarged:", json.dumps(report["one large face"]), flush=True)
    if args.out:
        args.out.write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Face detection for /align: fit the detector box -> landmark box mapping, and measure what it costs.

    .venv/bin/python bench/detect_align.py fit        # train-dev faces -> landmarks/detector_assets/box_mapping.json
    .venv/bin/python bench/detect_align.py measure    # dev faces -> JSON report (below)

`measure`, on the 300W dev split (held-out helen/trainset faces), with the bundled default landmark model:
- recall: share of faces that a detection matches with IoU >= 0.5 (the mapped box, which /align returns, and
  the detector's own box), and detection ms per image;
- NME with ground-truth boxes against NME with the boxes the detector found (a missed face counts at the
  ground-truth box's NME being unavailable: it is listed under `missed`);
- faces/s of detect + align against align with given boxes, timed in alternating rounds on the same photos
  so that load from other processes hits both alike;
- the flip test: NME and ms per face without and with it (ground-truth boxes).
Every step is the code the service runs (landmarks.face_detector, landmarks.landmarker).
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from landmarks import metrics  # noqa: E402
from landmarks.datasets import get_info, load_image, load_samples  # noqa: E402
from landmarks.face_detector import MAPPING_PATH, MATCH_IOU, BoxMapping, FaceDetector, box_iou  # noqa: E402
from landmarks.landmarker import OnnxLandmarker  # noqa: E402
from landmarks.passes import eye_indices_for  # noqa: E402

DEFAULT_DATA = REPO.parent / "shared" / "data" / "300w"
DEFAULT_MODEL = REPO / "sdhrnet" / "default_model"


def best_match(boxes: np.ndarray, truth: np.ndarray) -> tuple[int | None, float]:
    if len(boxes) == 0:
        return None, 0.0
    ious = box_iou(truth, boxes)
    i = int(np.argmax(ious))
    return i, float(ious[i])


LOOSE_MATCH_IOU = 0.3  # a detector's own box is shaped unlike the landmark box, so it is matched loosely


def fit_mapping(raw_detect, samples) -> tuple[BoxMapping, int]:
    """A detector's own boxes -> the true points' box: BoxMapping.fit over the faces `raw_detect(image) -> (N, 4)
    boxes` finds in `samples`; -> (mapping, faces matched)."""
    detector_boxes, truth = [], []
    for s in samples:
        raw = raw_detect(load_image(s))
        i, iou = best_match(raw, s.box)
        if i is not None and iou >= LOOSE_MATCH_IOU:
            detector_boxes.append(raw[i])
            truth.append(s.box)
    return BoxMapping.fit(detector_boxes, truth), len(truth)


def fit(data_root: Path, out: Path) -> dict:
    detector = FaceDetector(mapping=BoxMapping())
    samples = load_samples("300w", data_root, "train-dev")
    mapping, matched = fit_mapping(lambda image: detector.raw_detect(image)[0], samples)
    record = {**mapping.to_dict(), "fitted_on": f"300w train-dev, {matched} of {len(samples)} faces matched",
              "command": "python bench/detect_align.py fit"}
    out.write_text(json.dumps(record, indent=1) + "\n")
    return record


def load_landmarker(model_dir: Path, threads: int) -> OnnxLandmarker:
    card = json.loads((model_dir / "model_card.json").read_text())
    return OnnxLandmarker(model_dir / "model.onnx", input_size=card["input_size"], flip_pairs=card["flip_pairs"],
                          threads=threads, eye_indices=eye_indices_for(card))


def measure(data_root: Path, model_dir: Path, rounds: int, threads: int) -> dict:
    info = get_info("300w")
    samples = list(load_samples("300w", data_root, "dev"))
    images = [load_image(s) for s in samples]
    detector = FaceDetector()
    landmarker = load_landmarker(model_dir, threads)

    mapped_iou, raw_iou, detect_ms, detect_cpu_ms, faces_found = [], [], [], [], []
    gt_pred, det_pred, missed = {}, {}, []
    for s, image in zip(samples, images):
        t, cpu = time.perf_counter(), time.process_time()
        found = detector.detect(image)
        detect_ms.append((time.perf_counter() - t) * 1e3)
        detect_cpu_ms.append((time.process_time() - cpu) * 1e3)
        faces_found.append(len(found))
        i, iou = best_match(found.boxes, s.box)
        mapped_iou.append(iou)
        raw_iou.append(best_match(found.detector_boxes, s.box)[1])
        gt_pred[s.sample_id] = landmarker.predict(image, s.box[None])[0][0]
        if i is not None and iou >= MATCH_IOU:
            det_pred[s.sample_id] = landmarker.predict(image, found.boxes[i][None], rolls=found.rolls[[i]])[0][0]
        else:
            missed.append(s.sample_id)

    def nme(predictions: dict) -> float:
        ids = [s for s in samples if s.sample_id in predictions]
        pred = np.stack([predictions[s.sample_id] for s in ids])
        gt = np.stack([s.landmarks for s in ids])
        return float(np.mean(metrics.nme_per_image(pred, gt, info)))

    detected_ids = set(det_pred)
    speed = side_by_side(samples, images, detector, landmarker, rounds)
    flip = flip_cost(samples, images, landmarker, rounds, nme)
    return {
        "split": "dev", "faces": len(samples), "model": str(model_dir.relative_to(REPO)),
        "recall_iou_0.5": float(np.mean(np.asarray(mapped_iou) >= MATCH_IOU)),
        "recall_iou_0.5_detector_box": float(np.mean(np.asarray(raw_iou) >= MATCH_IOU)),
        "mean_iou": float(np.mean(mapped_iou)), "min_iou": float(np.min(mapped_iou)),
        "faces_per_image": float(np.mean(faces_found)),
        "detect_ms_per_image_median": statistics.median(detect_ms),
        "detect_cpu_ms_per_image_median": statistics.median(detect_cpu_ms),
        "nme_ground_truth_boxes": nme(gt_pred),
        "nme_detected_boxes": nme(det_pred),
        "nme_ground_truth_boxes_same_faces": nme({k: v for k, v in gt_pred.items() if k in detected_ids}),
        "missed": missed, "mapping": BoxMapping.load().to_dict(), **speed, "flip_test": flip,
    }


def alternating(tools: dict, photos, rounds: int, by_photo: bool = True) -> dict[str, dict[str, float]]:
    """Each `tools[name](image, true box) -> faces answered` over the same decoded photos [(image, true box)], the
    tools taking turns photo by photo (`by_photo`) or each over all photos in turn, round after round, so that load
    from other processes hits all alike; per tool the wall and CPU (process) milliseconds per photo and faces/s,
    since a loaded machine inflates wall time."""
    wall, cpu, faces = dict.fromkeys(tools, 0.0), dict.fromkeys(tools, 0.0), dict.fromkeys(tools, 0)
    turns = ([[(name, [photo]) for name in tools] for photo in photos] if by_photo
             else [[(name, photos) for name in tools]])
    for _ in range(rounds):
        for turn in turns:
            for name, some in turn:
                t, c = time.perf_counter(), time.process_time()
                for image, box in some:
                    faces[name] += tools[name](image, box)
                wall[name] += time.perf_counter() - t
                cpu[name] += time.process_time() - c
    n = rounds * len(photos)
    return {name: {"ms_per_image": 1e3 * wall[name] / n, "cpu_ms_per_image": 1e3 * cpu[name] / n,
                   "faces_per_s": faces[name] / wall[name]} for name in tools}


def detect_then_align(detector, landmarker, **options):
    """/align without boxes as one call (image, ignored true box) -> faces answered."""
    def run(image, _box) -> int:
        found = detector.detect(image)
        if len(found):
            landmarker.predict(image, found.boxes, rolls=found.rolls, **options)
        return len(found)
    return run


def side_by_side(samples, images, detector, landmarker, rounds: int) -> dict:
    """faces/s of the request kinds /align serves (given boxes; no boxes, with its default second pass and
    with ?recrop=false)."""
    tools = {"given_boxes": lambda image, box: len(landmarker.predict(image, box[None])[0]),
             "detect_then_align": detect_then_align(detector, landmarker, recrop=False),
             "detect_then_align_recrop": detect_then_align(detector, landmarker, recrop=True)}
    timed = alternating(tools, [(image, s.box) for s, image in zip(samples, images)], rounds)
    return {f"{figure}_{kind}": value for kind, figures in timed.items() for figure, value in figures.items()}


def flip_cost(samples, images, landmarker, rounds: int, nme) -> dict:
    spent, cpu = {False: 0.0, True: 0.0}, {False: 0.0, True: 0.0}
    preds = {False: {}, True: {}}
    for _ in range(rounds):
        for s, image in zip(samples, images):
            for flip in (False, True):
                t, c = time.perf_counter(), time.process_time()
                preds[flip][s.sample_id] = landmarker.predict(image, s.box[None], flip_test=flip)[0][0]
                spent[flip] += time.perf_counter() - t
                cpu[flip] += time.process_time() - c
    n = rounds * len(samples)
    return {"nme": nme(preds[False]), "nme_flip": nme(preds[True]),
            "ms_per_face": 1e3 * spent[False] / n, "ms_per_face_flip": 1e3 * spent[True] / n,
            "cpu_ms_per_face": 1e3 * cpu[False] / n, "cpu_ms_per_face_flip": 1e3 * cpu[True] / n}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("what", choices=["fit", "measure"])
    p.add_argument("--data-root", type=Path, default=DEFAULT_DATA, help="300W folder (default ../shared/data/300w)")
    p.add_argument("--model-dir", type=Path, default=DEFAULT_MODEL)
    p.add_argument("--rounds", type=int, default=3, help="timing passes over the dev photos")
    p.add_argument("--threads", type=int, default=1, help="ONNX Runtime threads (the service's default is 1)")
    p.add_argument("--out", type=Path, default=MAPPING_PATH, help="fit: where the mapping goes")
    args = p.parse_args(argv)
    if args.what == "fit":
        result = fit(args.data_root, args.out)
    else:
        result = measure(args.data_root, args.model_dir.resolve(), args.rounds, args.threads)
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())

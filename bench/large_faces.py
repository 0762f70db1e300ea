"""Large faces: NME when a face fills many more pixels than the training crops had, with crops sampled bilinearly
straight from the photo (the crops before) and with crops area-averaged first down to the density the network was
trained at (landmarks.geometry.MAX_BILINEAR_REDUCTION, what every crop does now).

The 300W photos here were shrunk so that each face is at most 200 px across, so a phone photo's 800-2000 px face is
simulated: each photo is enlarged (bicubic) until its face is `--face-px` across, and sensor noise of standard
deviation `--noise` grey levels is added at that size (seeded by the photo, so both crops see the same noise). An
enlarged photo holds none of the fine texture a real one has, so the noise stands in for it. Each face is cropped at
its true points' box and answered as /align answers a box sent (the default passes); paired face by face (share of
faces better, Wilcoxon p), and the time of the crops per face (prepare_faces, one face). Then the face detector's look
at whole photos of 3, 12 and 48 megapixels (a dev photo enlarged): the photo shrunk onto the detector's 128 px by one
area resize (the code before) and by halvings first (geometry.area_resized, what the detector does now), side by side,
and the whole detect() call.

    .venv/bin/python bench/large_faces.py [--model sdhrnet/default_model] [--face-px 200 800 1600] [--noise 0 8 16]
"""
from __future__ import annotations

import argparse
import math
import time
import zlib
from contextlib import contextmanager

import cv2
import numpy as np

from results_table import DEV
from trainer.evaluate import resolve_model
from landmarks import geometry, metrics
from landmarks.datasets import get_info, load_samples
from landmarks.datasets.base import load_image
from landmarks.face_detector import INPUT_SIZE, FaceDetector
from landmarks.landmarker import OnnxLandmarker, prepare_faces
from landmarks.low_resolution import shrink
from landmarks.passes import eye_indices_for
from landmarks.selection import paired

CROPS = {"bilinear from the photo": float("inf"), "area-averaged first": geometry.MAX_BILINEAR_REDUCTION}


@contextmanager
def bilinear_reduction_limit(limit: float):
    kept = geometry.MAX_BILINEAR_REDUCTION
    geometry.MAX_BILINEAR_REDUCTION = limit
    try:
        yield
    finally:
        geometry.MAX_BILINEAR_REDUCTION = kept


def enlarged(sample, face_px: int, noise: float) -> tuple[np.ndarray, np.ndarray]:
    """(the photo with its face `face_px` across plus noise, its points in that photo's pixels)."""
    image = load_image(sample)
    box = geometry.landmark_box(sample.landmarks)
    factor = face_px / max(box[2] - box[0], box[3] - box[1])
    height, width = image.shape[:2]
    size = (round(width * factor), round(height * factor))
    big = cv2.resize(image, size, interpolation=cv2.INTER_CUBIC if factor > 1 else cv2.INTER_AREA)
    if noise:
        rng = np.random.default_rng(zlib.crc32(sample.sample_id.encode()))
        big = np.clip(big + rng.normal(0.0, noise, big.shape).astype(np.float32), 0, 255).astype(np.uint8)
    return big, shrink(sample.landmarks, np.array([size[0] / width, size[1] / height]))


def score(samples, info, landmarker: OnnxLandmarker, face_px: int, noise: float) -> dict[str, dict]:
    """{crop: {"per_face": {id: NME}, "crop_ms": [...]}}"""
    out = {crop: {"per_face": {}, "crop_ms": []} for crop in CROPS}
    for s in samples:
        image, truth = enlarged(s, face_px, noise)
        box = geometry.landmark_box(truth)[None]
        for crop, limit in CROPS.items():
            with bilinear_reduction_limit(limit):
                start = time.perf_counter()
                prepare_faces(image, box, landmarker.input_size)
                out[crop]["crop_ms"].append((time.perf_counter() - start) * 1e3)
                points, _ = landmarker.predict(image, box, recrop=None)
            out[crop]["per_face"][s.sample_id] = float(metrics.nme_per_image(points, truth[None], info)[0])
    return out


def median_ms(fn, repeats: int = 7) -> float:
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1e3)
    return float(np.median(times))


def detector_looks(photo: np.ndarray, megapixels=(3, 12, 48)) -> None:
    detector = FaceDetector()
    print("\n| photo | one area resize onto 128 px, ms | halvings first, ms | ratio | detect(), ms |\n"
          "| --- | --- | --- | --- | --- |")
    for mp in megapixels:
        width = round(math.sqrt(mp * 1e6 * 4 / 3))
        big = cv2.resize(photo, (width, width * 3 // 4), interpolation=cv2.INTER_CUBIC)
        size = (INPUT_SIZE, round(INPUT_SIZE * big.shape[0] / big.shape[1]))
        one = median_ms(lambda: cv2.resize(big, size, interpolation=cv2.INTER_AREA))
        halved = median_ms(lambda: geometry.area_resized(big, size))
        print(f"| {big.shape[1]}x{big.shape[0]} | {one:.1f} | {halved:.1f} | {one / halved:.1f}x | "
              f"{median_ms(lambda: detector.detect(big)):.1f} |", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="sdhrnet/default_model", help="anything `sdhrnet evaluate --model` takes")
    ap.add_argument("--face-px", type=int, nargs="+", default=[200, 800, 1600])
    ap.add_argument("--noise", type=float, nargs="+", default=[0, 8, 16], help="grey levels (standard deviation)")
    ap.add_argument("--every", type=int, default=1, help="score every n-th dev face")
    ap.add_argument("--threads", type=int, default=1, help="ONNX Runtime threads")
    args = ap.parse_args()
    info, samples = get_info(DEV.dataset), load_samples(DEV.dataset, DEV.root, DEV.split)[::args.every]
    onnx_path, card = resolve_model(args.model)
    landmarker = OnnxLandmarker(onnx_path, input_size=card.get("input_size"), threads=args.threads,
                                eye_indices=eye_indices_for(card))
    print(f"{DEV.name}: {len(samples)} faces, {args.model}, true boxes, default passes, {args.threads} ORT thread(s)\n")
    print("| face px | noise | NME, " + " | NME, ".join(CROPS) + " | change | faces better | Wilcoxon p | crop ms, "
          + " | crop ms, ".join(CROPS) + " |\n|" + " --- |" * (5 + 2 * len(CROPS)))
    before, after = CROPS
    for face_px in args.face_px:
        for noise in args.noise:
            r = score(samples, info, landmarker, face_px, noise)
            c = paired([r[before]["per_face"]], [r[after]["per_face"]])
            print(f"| {face_px} | {noise:g} | {c['nme_a']:.4f} | {c['nme_b']:.4f} | {c['relative_change']:+.1%} | "
                  f"{c['b_better_share']:.0%} | {c['wilcoxon_p']:.2g} | "
                  + " | ".join(f"{np.median(r[crop]['crop_ms']):.2f}" for crop in CROPS) + " |", flush=True)
    detector_looks(load_image(samples[0]))


if __name__ == "__main__":
    main()

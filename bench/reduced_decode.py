"""Large JPEGs decoded at 1/2, 1/4 or 1/8 (landmarks.decode_scale): NME, decode time and pixels held, against the
full decode of the same file, side by side.

Each dev photo is enlarged (bicubic) until its face (the box of its true points) is `--face-px` across, with sensor
noise of `--noise` grey levels (an enlarged photo holds none of a real one's fine texture; the noise stands in for
it), saved as a JPEG at quality 92 with sides that are multiples of 8, then decoded in full and at each reduction.
Every face is answered at its true box as /align answers a box sent, and the error is measured in full-photo pixels.
A row per (face size, reduction): the face's size after the reduction, NME, the share of faces better than with the
full decode and the paired Wilcoxon p, the decode time per photo (median) and the megapixels decoded.

Then the whole answer of `sdhrnet align` (the same steps as /align: decode, face search, passes) per photo, as the
service answers now (each photo decoded as finely as its face needs) and with every photo decoded in full, side by
side on the same files: without boxes and with the true box sent; median ms, NME and megapixels decoded.

    .venv/bin/python bench/reduced_decode.py [--face-px 800 1600] [--n 60] [--threads 1]
"""
from __future__ import annotations

import argparse
import io
import time

import cv2
import numpy as np
from scipy.stats import wilcoxon

from trainer.evaluate import resolve_model
from landmarks import decode_scale, metrics
from landmarks.datasets import get_info, load_samples
from landmarks.datasets.base import load_image
from landmarks.geometry import landmark_box
from landmarks.landmarker import OnnxLandmarker
from landmarks.passes import eye_indices_for

FLAGS = decode_scale.FLAGS


def enlarged_jpeg(image: np.ndarray, points: np.ndarray, face_px: float, noise: float, seed: int):
    """-> (JPEG bytes, points, box) of the photo enlarged until its face is `face_px` across, sides cut to multiples
    of 8."""
    box = landmark_box(points)
    k = face_px / max(box[2] - box[0], box[3] - box[1])
    h, w = image.shape[:2]
    size = (int(w * k) // 8 * 8, int(h * k) // 8 * 8)
    big = cv2.resize(image, size, interpolation=cv2.INTER_CUBIC).astype(np.float32)
    if noise:
        big += np.random.default_rng(seed).normal(0, noise, big.shape).astype(np.float32)
    big = np.clip(big, 0, 255).astype(np.uint8)
    # the same pixel-centre convention as decode_scale: pixel i of the original spans k pixels of the enlarged one
    scaled = (points + 0.5) * np.array(size) / (w, h) - 0.5
    ok, data = cv2.imencode(".jpg", cv2.cvtColor(big, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 92])
    return data, scaled, landmark_box(scaled)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="sdhrnet/default_model")
    parser.add_argument("--data-root", default="../shared/data/300w")
    parser.add_argument("--face-px", type=float, nargs="+", default=[800, 1600])
    parser.add_argument("--noise", type=float, default=8.0)
    parser.add_argument("--n", type=int, default=60, help="dev faces (the first N)")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()

    onnx_path, card = resolve_model(args.model)
    landmarker = OnnxLandmarker(onnx_path, input_size=card["input_size"], threads=args.threads,
                                eye_indices=eye_indices_for(card))
    info = get_info("300w")
    samples = load_samples("300w", args.data_root, "dev")[:args.n]
    print(f"{len(samples)} dev faces, model input {card['input_size']} px, smallest face a reduction may leave: "
          f"{decode_scale.smallest_face_px(card['input_size']):.0f} px; noise {args.noise:g}")
    print("| face px | reduction | face px decoded | NME | faces better than full | p | decode ms (median) | "
          "megapixels decoded |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for face_px in args.face_px:
        errors = {f: [] for f in FLAGS}
        times = {f: [] for f in FLAGS}
        pixels = {f: [] for f in FLAGS}
        for i, sample in enumerate(samples):
            data, points, box = enlarged_jpeg(load_image(sample), sample.landmarks, face_px, args.noise, i)
            norm = metrics.normalizer(points[None], info)[0]
            for f, flag in FLAGS.items():
                t0 = time.perf_counter()
                bgr = cv2.imdecode(data, flag)
                image = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
                times[f].append((time.perf_counter() - t0) * 1e3)
                pixels[f].append(image.shape[0] * image.shape[1] / 1e6)
                aligned = landmarker.align(image, decode_scale.to_decoded(box, f)[None], recrop=None)
                found = decode_scale.to_photo(aligned.landmarks[0], f)
                errors[f].append(np.linalg.norm(found - points, axis=1).mean() / norm)
        full = np.array(errors[1])
        for f in FLAGS:
            e = np.array(errors[f])
            diff = e - full
            better = float((diff < 0).mean())
            p = float(wilcoxon(diff).pvalue) if np.any(diff != 0) else 1.0
            print(f"| {face_px:g} | 1/{f} | {face_px / f:.0f} | {e.mean():.5f} | "
                  f"{'' if f == 1 else f'{better:.0%}'} | {'' if f == 1 else f'{p:.2g}'} | "
                  f"{np.median(times[f]):.1f} | {np.mean(pixels[f]):.1f} |")
    whole_answers(args, samples, info)


def whole_answers(args, samples, info) -> None:
    from dataclasses import replace

    from sdhrnet.cli.align import Aligner

    aligner = Aligner(args.model, args.threads, flip=False)
    print("\n| face px | boxes | decoded | ms per photo (median) | NME | megapixels decoded |")
    print("| --- | --- | --- | --- | --- | --- |")
    for face_px in args.face_px:
        rows = {}
        for i, sample in enumerate(samples):
            data, points, box = enlarged_jpeg(load_image(sample), sample.landmarks, face_px, args.noise, i)
            photo = decode_scale.Photo.of(bytes(data), decode_scale.read_header(io.BytesIO(bytes(data))))
            norm = metrics.normalizer(points[None], info)[0]
            for how, p in (("as needed", photo), ("in full", replace(photo, jpeg=False))):
                for sent in (None, [box.tolist()]):
                    t0 = time.perf_counter()
                    answer = aligner.answer(p, sent)
                    ms = (time.perf_counter() - t0) * 1e3
                    faces = answer["faces"]
                    nme = np.linalg.norm(np.asarray(faces[0]["landmarks"]) - points, axis=1).mean() / norm \
                        if len(faces) == 1 else np.nan  # a missed or extra face is left out of the mean
                    f = p.factor_for(face_px, aligner.landmarker.input_size) if sent else p.search_factor(False)
                    rows.setdefault((sent is not None, how), []).append((ms, nme, p.width * p.height / f / f / 1e6))
        for (boxes, how), values in rows.items():
            ms, nme, mp = np.array(values).T
            print(f"| {face_px:g} | {'sent' if boxes else 'detected'} | {how} | {np.median(ms):.1f} | "
                  f"{np.nanmean(nme):.5f} | {np.mean(mp):.2f} |")


if __name__ == "__main__":
    main()

"""Scoring: predictions (sample id -> (M, 2) landmarks in image px) against a split's ground truth, and the
predictions of a landmarker on a split's ground-truth boxes."""
from __future__ import annotations

from collections import defaultdict

import numpy as np

from landmarks import metrics
from landmarks.answers import non_faces
from landmarks.datasets.base import DatasetInfo, Sample, load_image
from landmarks.face_detector import match_faces
from landmarks.low_resolution import restore


class PredictionError(ValueError):
    """A predictions file that cannot be scored."""


def _as_points(sample_id: str, value, num_landmarks: int) -> np.ndarray:
    try:
        p = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise PredictionError(f"prediction for {sample_id!r} is not a list of [x, y] numbers") from None
    if p.shape != (num_landmarks, 2):
        raise PredictionError(f"prediction for {sample_id!r} has shape {p.shape}, expected ({num_landmarks}, 2): "
                              f"a list of {num_landmarks} [x, y] pairs")
    if not np.all(np.isfinite(p)):
        raise PredictionError(f"prediction for {sample_id!r} contains NaN or infinity")
    return p


def score_predictions(samples: list[Sample], info: DatasetInfo, predictions: dict,
                      threshold: float = metrics.THRESHOLD) -> dict:
    """-> {n, nme, fr, auc, missing, unexpected, per_image, ced, subsets}; images without a prediction are
    listed in `missing` and left out of the scores."""
    if not isinstance(predictions, dict):
        raise PredictionError("predictions must be a JSON object: sample id -> list of [x, y]")
    scored, missing = [], []
    for s in samples:
        if s.sample_id in predictions:
            scored.append((s, _as_points(s.sample_id, predictions[s.sample_id], info.num_landmarks)))
        else:
            missing.append(s.sample_id)
    known = {s.sample_id for s in samples}
    unexpected = sorted(k for k in predictions if k not in known)
    if scored:
        nmes = metrics.nme_per_image(np.stack([p for _, p in scored]), np.stack([s.landmarks for s, _ in scored]), info)
    else:
        nmes = np.zeros(0)
    by_subset = defaultdict(list)
    for (s, _), e in zip(scored, nmes):
        for name in s.attributes.get("subsets", []):
            by_subset[name].append(e)
    x, y = metrics.ced(nmes, threshold)
    report = metrics.summarize(nmes, threshold)
    report.update({
        "threshold": threshold,
        "missing": missing,
        "unexpected": unexpected,
        "per_image": {s.sample_id: float(e) for (s, _), e in zip(scored, nmes)},
        "ced": {"x": x.tolist(), "y": y.tolist()},
        "subsets": {name: metrics.summarize(v, threshold) for name, v in sorted(by_subset.items())},
    })
    return report


def faces_by_photo(samples: list[Sample]) -> list[list[Sample]]:
    """The samples grouped by the photo they are in, in first-seen order. Frames of a video pack share a path but not
    their pixels, so an in-memory image is a photo of its own."""
    groups = defaultdict(list)
    for s in samples:
        groups[(str(s.image_path), id(s.image) if s.image is not None else None)].append(s)
    return list(groups.values())


def predict_with_landmarker(landmarker, samples: list[Sample], flip_test: bool = False, progress=None,
                            occlusion=None, detector=None, recrop: bool = False, low_resolution=None,
                            tilt_at=None, small_faces: bool = False) -> dict:
    """Run a landmarker (anything with .predict(image_rgb, boxes, flip_test=..., recrop=...)) on every sample's
    ground-truth box -> {sample id: (M, 2) landmarks}. Faces sharing a photo are predicted in one batch. `occlusion` (a
    landmarks.occlusion.Occlusion) covers part of each face before prediction. With a `detector` (a
    landmarks.face_detector.FaceDetector) each face is cropped at the box the detector found for it instead, as
    `/align` without boxes does: the ground-truth box, which encloses the true points, is a box no user has. A face
    the detector misses gets no prediction (scoring lists it as missing). `recrop`: the landmarker's second pass at
    the box of its first-pass points (landmarks.passes.second_pass); `tilt_at`: with it, a face detector's tilt for
    the faces the first pass is unsure of (FaceDetector.tilt_at, landmarks.passes.turn_unsure), as /align asks.
    `low_resolution` (a landmarks.low_resolution.LowResolution) shrinks each photo before detection and prediction
    and maps the points back. `small_faces`: the detector also scans tiles of each photo for faces its one look at
    the whole photo cannot see (FaceDetector.detect, /align's small_faces), and a face only they found that the
    network sees no face in is missing, as /align leaves it out (landmarks.answers.non_faces)."""
    out, done = {}, 0
    for group in faces_by_photo(samples):
        image = load_image(group[0])
        boxes = np.stack([s.box for s in group])
        if occlusion is not None:
            image = occlusion.apply(image, boxes, [s.sample_id for s in group])
        scale = np.ones(2)  # the photo's scale, where low_resolution shrank it
        if low_resolution is not None:
            image, boxes, scale = low_resolution.apply(image, boxes)
        faces, rolls, framed = group, None, None
        if detector is not None:
            found = detector.detect(image, small_faces=small_faces)
            matches = match_faces(found.boxes, boxes)
            faces = [s for s, m in zip(group, matches) if m is not None]
            found = found[[m for m in matches if m is not None]]
            boxes, rolls, framed = found.boxes, found.rolls, found.framed
        if faces:
            landmarks, confidence = landmarker.predict(image, boxes, flip_test=flip_test, recrop=recrop, rolls=rolls,
                                                       tilt_at=tilt_at, framed=framed)
            if detector is not None:  # what /align leaves out: a face the tiles alone found, which the network doubts
                kept = ~non_faces(confidence, found)
                faces, landmarks = [s for s, k in zip(faces, kept) if k], landmarks[kept]
            for s, pts in zip(faces, landmarks):
                out[s.sample_id] = restore(pts, scale)
        done += len(group)
        if progress is not None:
            progress(done, len(samples))
    return out

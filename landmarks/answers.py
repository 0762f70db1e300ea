"""What `/align` answers about an image, shared by the route and `sdhrnet align`: which passes a face gets by default,
and each face and the face search as JSON-ready dicts."""
from __future__ import annotations

import time
from dataclasses import replace

import numpy as np

from landmarks.decode_scale import box_sides, to_decoded, to_photo
from landmarks.geometry import face_roll, turn_points
from landmarks.passes import mean_confidence

# Mean heatmap peak under which the landmark network sees no face in a detection that only the tiles of small_faces
# found (the whole photo's look did not). On dev photos enlarged to 1760 px, 8 of the 13 finds besides the photos'
# faces (a forehead, an earring, hair) score 0.26-0.45 and the faces 0.72 and more; in group photos the faces the tiles
# find score 0.65 and more (300W dev faces of 60-200 px) and 0.48 and more (p1-ytf68 video frames of 50-100 px: one of
# 430 under 0.5) (bench/group_photos.py)
NOT_A_FACE = 0.5


class BoxError(ValueError):
    """A face box sent with a photo that cannot be answered; the message says what to send instead."""


def box_array(raw) -> np.ndarray:
    """The boxes a caller sent as (N, 4) float64, when they are a non-empty list of four numbers each; BoxError
    otherwise. What the image must say of them is checked_boxes'."""
    def is_number(v) -> bool:
        return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, (bool, np.bool_))

    if not isinstance(raw, list) or not all(isinstance(b, list) and len(b) == 4 and all(map(is_number, b))
                                            for b in raw):
        raise BoxError("boxes must be a list of [x1, y1, x2, y2] lists of numbers in image pixels")
    if not raw:
        raise BoxError("no boxes given; send at least one face box [x1, y1, x2, y2]")
    return np.asarray(raw, dtype=np.float64)


def checked_boxes(raw, image_shape) -> np.ndarray:
    """The boxes a caller sent ([[x1, y1, x2, y2], ...] in pixels of the image of `image_shape`, as decoded) ->
    float32 (N, 4); BoxError names the first box to fix. A box must span 2 pixels each way and lie at least half
    inside the image: a crop around one mostly outside is padding, and its points would be made up."""
    boxes = box_array(raw)
    h, w = image_shape[:2]
    for i, (x1, y1, x2, y2) in enumerate(boxes):
        where = f"box {i} {[float(v) for v in (x1, y1, x2, y2)]}"
        if not np.isfinite(boxes[i]).all():
            raise BoxError(f"{where} contains NaN or infinity; send finite pixel coordinates")
        if x2 - x1 < 2 or y2 - y1 < 2:
            raise BoxError(f"{where} is degenerate: x2 must exceed x1 and y2 exceed y1 by at least 2 pixels")
        ix = min(x2, w) - max(x1, 0)
        iy = min(y2, h) - max(y1, 0)
        inside = max(ix, 0) * max(iy, 0) / ((x2 - x1) * (y2 - y1))
        if inside < 0.5:
            raise BoxError(f"{where} lies mostly outside the {w}x{h} image (at least half of the box must be "
                           "inside); boxes are [x1, y1, x2, y2] in pixels of this image")
    return boxes.astype(np.float32)


def default_recrop(recrop: bool | None, detected: bool) -> bool | None:
    """The second pass asked for, or /align's default: on for the faces the detector found (its boxes frame faces
    unlike the true points' box the model learnt on, and the second pass wins that back); None for boxes sent, which
    may already be tight: one pass, and more only where the first finds the face tilted or is unsure of it."""
    if recrop is not None:
        return recrop
    return True if detected else None


def non_faces(confidence, detections) -> np.ndarray:
    """(N,) bool: which of the detections (landmarked in order, `confidence` (N, M)) the tiles alone found and the
    network saw no face in (mean heatmap peak under NOT_A_FACE). A look at the whole photo stands as it is: what one
    look finds is answered whether or not small_faces was asked for."""
    if not len(detections):
        return np.zeros(0, bool)
    return np.asarray(detections.tiled, bool) & (mean_confidence(confidence) < NOT_A_FACE)


def detect(detector, image, max_faces: int | None, min_face_size: float, small_faces: bool,
           limit: int | None = None):
    """The detections /align and `sdhrnet align` landmark for an answer of at most `max_faces` faces. With
    small_faces, which of the tiles' finds are faces is known only after landmarking (non_faces): the detector returns
    up to `limit`, and those up to the max_faces-th find of the whole photo's look (never dropped) are landmarked,
    so that drop_non_faces can keep the best `max_faces` faces among them."""
    if not small_faces:
        return detector.detect(image, max_faces, min_face_size)
    found = detector.detect(image, limit, min_face_size, small_faces)
    sure = np.flatnonzero(~found.tiled)
    if max_faces is None or len(sure) < max_faces:
        return found
    return found[:sure[max_faces - 1] + 1]


def search_photo(detector, photo, input_size: int, max_faces: int | None, min_face_size: float, small_faces: bool,
                 limit: int | None = None, timing: dict | None = None):
    """detect() on a photo not yet decoded (decode_scale.Photo) -> (the photo decoded, its reduction, the Detections
    in its pixels). A large JPEG is searched decoded small (the detector shrinks it onto 128 px anyway), then decoded
    at the reduction its smallest face calls for, the one a box sent would get (photo_at_boxes): a detected face's
    box sent back is answered from the same pixels. Adds "decode" and "detect" milliseconds to `timing`."""
    timing = {} if timing is None else timing
    image, factor = photo.decode(photo.search_factor(small_faces), timing)
    start = time.perf_counter()
    found = detect(detector, image, max_faces, min_face_size / factor, small_faces, limit)
    timing["detect"] = timing.get("detect", 0.0) + (time.perf_counter() - start) * 1e3
    if len(found):
        needed = photo.factor_for(float(box_sides(found.boxes).min()) * factor, input_size)
        if needed != factor:
            image, decoded_at = photo.decode(needed, timing)
            found, factor = found.rescaled(factor / decoded_at), decoded_at
    return image, factor, found


def photo_at_boxes(photo, raw_boxes, input_size: int, timing: dict | None = None) -> tuple[np.ndarray, int, np.ndarray]:
    """A photo not yet decoded and the boxes sent with it -> (the photo decoded as finely as the smallest box needs,
    its reduction, the boxes checked against the decoded photo's size (checked_boxes) and in its pixels)."""
    image, factor = photo.decode(photo.factor_for(float(box_sides(box_array(raw_boxes)).min()), input_size), timing)
    boxes = checked_boxes(raw_boxes, (image.shape[0] * factor, image.shape[1] * factor))
    return image, factor, to_decoded(boxes, factor).astype(np.float32)


def drop_non_faces(aligned, detections, max_faces: int | None = None):
    """(per-face arrays in detection order: landmarks, confidence, ..., the Detections) -> the same without the
    non_faces, at most the first `max_faces` of them, and the Detections saying how many non-faces went
    (`not_faces`)."""
    if detections is None or not len(detections):
        return aligned, detections
    faces = np.flatnonzero(~non_faces(aligned[1], detections))
    keep = faces[:max_faces]
    if len(keep) == len(detections):
        return aligned, detections
    return tuple(np.asarray(part)[keep] for part in aligned), \
        replace(detections[keep], not_faces=detections.not_faces + len(detections) - len(faces))


def face_answers(landmarks, confidence, passes, boxes, box_rolls, eye_indices=None, detections=None) -> list[dict]:
    """One dict per face, in /align's `faces` form (service.schemas.Face); `detections` (face_detector.Detections,
    in the same order) gives each detected face's score and the detector's own box (None for boxes sent)."""
    faces = [{"box": [float(v) for v in box], "box_roll": float(box_roll), "detection_score": None,
              "detection_box": None, "landmarks": lm.astype(float).tolist(), "confidence": conf.astype(float).tolist(),
              "roll": None if eye_indices is None else face_roll(lm, eye_indices), "passes": int(n)}
             for box, box_roll, lm, conf, n in zip(boxes, box_rolls, landmarks, confidence, passes)]
    if detections is not None:
        for face, score, detector_box in zip(faces, detections.scores, detections.detector_boxes):
            face.update(detection_score=float(score), detection_box=[float(v) for v in detector_box])
    return faces


def faces_in_photo(faces: list[dict], factor: int) -> list[dict]:
    """face_answers of a photo decoded at 1/factor (landmarks.decode_scale) -> in pixels of the full photo."""
    if factor == 1:
        return faces
    for face in faces:
        face["box"] = to_photo(face["box"], factor).tolist()  # the inverse of what a box sent goes through
        face["landmarks"] = to_photo(face["landmarks"], factor).tolist()
        if face["detection_box"] is not None:  # the detector's boxes are continuous: pixel i spans [i, i + 1)
            face["detection_box"] = (np.asarray(face["detection_box"]) * factor).tolist()
    return faces


def search_answer(detections, factor: int = 1) -> dict | None:
    """/align's `detection`: how far the face search went (service.schemas.DetectionSearch); None for boxes sent
    (and for detections that FaceDetector.detect did not make, which say nothing of a search). `factor`: the
    reduction of the photo searched (landmarks.decode_scale), so that sizes are in pixels of the full photo."""
    if detections is None or detections.smallest_searched is None:
        return None
    return {"looks": int(detections.looks), "upside_down_look": bool(detections.upside_down_look),
            "smallest_face": round(float(detections.smallest_searched) * factor, 1),
            "not_faces": int(detections.not_faces)}


def box_corners(box, box_roll: float) -> np.ndarray:
    """The four corners (4, 2) of a face's box as drawn on the image: a box at a roll is the face's box in its own
    upright frame, turned by that roll about its centre."""
    x1, y1, x2, y2 = (float(v) for v in box)
    corners = np.array([[x1, y1], [x2, y1], [x2, y2], [x1, y2]])
    return turn_points(corners, box_roll, ((x1 + x2) / 2, (y1 + y2) / 2))

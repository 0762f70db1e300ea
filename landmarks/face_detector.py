"""Image -> face boxes for the landmark models (numpy + OpenCV, no torch), shared by the service and bench/.

BlazeFace short range (MediaPipe, see landmarks/detector_assets/README.md) through OpenCV's TFLite importer.
Its boxes are not the landmark models' boxes (those enclose the 68 points: brow to chin), so each detection is
also mapped onto that convention with a fixed offset and scale fitted on train-dev faces
(detector_assets/box_mapping.json); the service crops around the mapped box exactly as around a given one.
"""
from __future__ import annotations

import json
import threading
from dataclasses import dataclass, replace
from pathlib import Path

import cv2
import numpy as np

from landmarks.geometry import (CROP_EXPAND, area_resized, crop_face, invert_affine, scale_box, transform_points,
                                wrap_degrees)
from landmarks.landmarker import validate_image
from landmarks.passes import FAR_TURN, UPSIDE_DOWN, FaceTurn, crop_rolls

ASSETS = Path(__file__).resolve().parent / "detector_assets"
MODEL_PATH = ASSETS / "blazeface_short_range.tflite"
MAPPING_PATH = ASSETS / "box_mapping.json"

INPUT_SIZE = 128
STRIDES = (8, 16, 16, 16)  # MediaPipe's SSD options for the short-range model
SCORE_THRESHOLD = 0.5  # MediaPipe's min_score for this model
NMS_IOU = 0.3  # MediaPipe's min_suppression_threshold
RAW_SCORE_LIMIT = 80.0  # logits beyond this overflow float32 in the sigmoid
EYES = (slice(4, 6), slice(6, 8))  # the right and left eye keypoints' columns in a box's 16 regressor values
# tilt_at looks for a face in this many times its box, so that a loose or shifted box still holds the whole face
TILT_SEARCH = 2.0
MATCH_IOU = 0.5  # a detection is a labelled face when their boxes overlap this much (the usual detection criterion)
# The short-range model finds faces whose box is at least this share of the side of the square it sees (dev faces
# pasted into a 1000 px photo: all at 150 px, 73% at 120, 13% at 100): smaller faces need a look at a tile
SMALLEST_SHARE = 0.15
# Tiles one photo may cost (a detector run each, 3-4.5 ms on a 2-core EPYC, under half a landmark pass): two levels of
# a square photo, 9 + 49, which reach faces of 3.75% of its side
MAX_TILES = 64
# A tile of a photo shows parts of its larger faces (an ear, a hand, a cheek), which the model takes for small faces
# at scores of 0.50-0.62: on the 107 dev photos (440 px, searched with 220 px tiles), 16 detections besides the
# labelled faces at the model's 0.5, 5 at 0.65 (some of them real faces in the background); faces pasted into a
# 1600x1000 photo are found almost as often (at 80 px 134 of 135 against 135, at 60 px 217 of 252 against 232)
TILE_SCORE = 0.65
# BlazeFace scores every face turned by 180 degrees (which it takes for upright, where it finds it) under 0.85 on the
# 107 dev photos and 770 video frames, and the faces of 89% of them upright at 0.85 or more: a face scored under this
# asks for a look at the photo turned upside down, which scored higher than the upright look on every face turned by
# 180 and on no upright one
UNSURE_SCORE = 0.85
# What the upside-down look finds counts from this score: it scored 99% of those faces 0.79 or more, while the parts of
# faces and backgrounds it took for faces in group photos scored 0.51-0.73
UPSIDE_DOWN_SCORE = 0.78


def ssd_anchors(input_size: int = INPUT_SIZE, strides=STRIDES) -> np.ndarray:
    """(A, 2) anchor centres in [0, 1], in the order the model emits them (layers of equal stride share a grid,
    two anchors per layer and cell)."""
    centres = []
    i = 0
    while i < len(strides):
        j = i
        while j < len(strides) and strides[j] == strides[i]:
            j += 1
        n = input_size // strides[i]
        grid = (np.arange(n) + 0.5) / n
        xy = np.stack(np.meshgrid(grid, grid), -1).reshape(-1, 2)  # row-major: y outer, x inner
        centres.append(np.repeat(xy, 2 * (j - i), axis=0))
        i = j
    return np.concatenate(centres).astype(np.float64)


def box_iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """IoU of one [x1, y1, x2, y2] box with each of (N, 4) boxes."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    ix = np.clip(np.minimum(box[2], boxes[:, 2]) - np.maximum(box[0], boxes[:, 0]), 0, None)
    iy = np.clip(np.minimum(box[3], boxes[:, 3]) - np.maximum(box[1], boxes[:, 1]), 0, None)
    inter = ix * iy
    union = (box[2] - box[0]) * (box[3] - box[1]) + (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]) - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)


def match_faces(found: np.ndarray, truth: np.ndarray, min_iou: float = MATCH_IOU) -> list[int | None]:
    """For each true box, the index of the found box that overlaps it most, or None when none reaches min_iou."""
    found = np.asarray(found, np.float64).reshape(-1, 4)
    out = []
    for box in np.asarray(truth, np.float64).reshape(-1, 4):
        ious = box_iou(box, found)
        best = int(np.argmax(ious)) if len(ious) else None
        out.append(best if best is not None and ious[best] >= min_iou else None)
    return out


def weighted_nms(boxes: np.ndarray, scores: np.ndarray, iou: float = NMS_IOU) -> tuple[np.ndarray, np.ndarray]:
    """MediaPipe's blending suppression: each kept box is the score-weighted mean of the boxes it suppresses,
    which steadies the box (and so the landmark crop) more than keeping the single best anchor. `boxes` may carry
    more columns after the four of the box (keypoints): they are blended alike."""
    order = np.argsort(-scores)
    boxes, scores = boxes[order], scores[order]
    kept_boxes, kept_scores = [], []
    remaining = np.ones(len(boxes), bool)
    for i in range(len(boxes)):
        if not remaining[i]:
            continue
        group = remaining & (box_iou(boxes[i, :4], boxes[:, :4]) > iou)
        group[i] = True
        w = scores[group]
        kept_boxes.append((boxes[group] * w[:, None]).sum(0) / w.sum())
        kept_scores.append(scores[i])
        remaining &= ~group
    return np.asarray(kept_boxes, np.float64).reshape(-1, boxes.shape[1]), np.asarray(kept_scores, np.float64)


@dataclass(frozen=True)
class BoxMapping:
    """Detector box -> landmark box: centre moves by `offset` x the detector box side, sides are `scale` x it."""
    offset_x: float = 0.0
    offset_y: float = 0.0
    scale_w: float = 1.0
    scale_h: float = 1.0

    @classmethod
    def load(cls, path=MAPPING_PATH) -> "BoxMapping":
        data = json.loads(Path(path).read_text())
        return cls(**{k: float(data[k]) for k in ("offset_x", "offset_y", "scale_w", "scale_h")})

    @classmethod
    def fit(cls, detector_boxes, landmark_boxes) -> "BoxMapping":
        """Medians, so that a few odd faces (profiles, a wrong match) do not pull the crop."""
        d = np.asarray(detector_boxes, np.float64).reshape(-1, 4)
        g = np.asarray(landmark_boxes, np.float64).reshape(-1, 4)
        side = _side(d)
        shift = (_centre(g) - _centre(d)) / side[:, None]
        return cls(float(np.median(shift[:, 0])), float(np.median(shift[:, 1])),
                   float(np.median((g[:, 2] - g[:, 0]) / side)), float(np.median((g[:, 3] - g[:, 1]) / side)))

    def apply(self, detector_boxes, rolls=None) -> np.ndarray:
        """Landmark boxes; with `rolls` (degrees) the offset follows each face's tilt and the box is the face's box in
        its own upright frame (geometry.crop_face turns the crop by the same roll)."""
        d = np.asarray(detector_boxes, np.float64).reshape(-1, 4)
        side = _side(d)
        offset = np.array([self.offset_x, self.offset_y]) * side[:, None]
        if rolls is not None:
            t = np.radians(np.asarray(rolls, np.float64).reshape(-1))
            cos, sin = np.cos(t), np.sin(t)
            offset = np.stack([offset[:, 0] * cos - offset[:, 1] * sin, offset[:, 0] * sin + offset[:, 1] * cos], 1)
        c = _centre(d) + offset
        half = np.stack([self.scale_w * side, self.scale_h * side], 1) / 2
        return np.concatenate([c - half, c + half], 1)

    def invert(self, landmark_boxes) -> np.ndarray:
        """The square detector boxes that `apply` maps onto these landmark boxes (exact for square detector
        boxes such as dlib's), to hand another tool a box in the convention it was trained on."""
        g = np.asarray(landmark_boxes, np.float64).reshape(-1, 4)
        side = np.sqrt((g[:, 2] - g[:, 0]) * (g[:, 3] - g[:, 1]) / (self.scale_w * self.scale_h))
        c = _centre(g) - np.array([self.offset_x, self.offset_y]) * side[:, None]
        return np.concatenate([c - side[:, None] / 2, c + side[:, None] / 2], 1)

    def to_dict(self) -> dict:
        return {"offset_x": self.offset_x, "offset_y": self.offset_y, "scale_w": self.scale_w, "scale_h": self.scale_h}


def _centre(b: np.ndarray) -> np.ndarray:
    return (b[:, :2] + b[:, 2:]) / 2


def _side(b: np.ndarray) -> np.ndarray:
    # geometric mean of width and height: one length per box, whatever the detector's aspect ratio
    return np.sqrt(np.clip(b[:, 2] - b[:, 0], 1e-6, None) * np.clip(b[:, 3] - b[:, 1], 1e-6, None))


@dataclass
class Detections:
    boxes: np.ndarray  # (N, 4) landmark-convention boxes in image px (a tilted face's in its upright frame): the crops
    detector_boxes: np.ndarray  # (N, 4) the detector's own boxes in image px
    scores: np.ndarray  # (N,) detection scores in (0, 1], best first
    tilts: np.ndarray | None = None  # (N,) each face's tilt in degrees by the eye keypoints (face_roll's convention)
    mapping: BoxMapping | None = None  # how `boxes` came from `detector_boxes`; none: they are the same
    looks: int = 1  # detector runs over the photo: the whole of it, then tiles, then upside down (FaceDetector.detect)
    upside_down_look: bool = False  # the whole photo was also looked at turned by 180 degrees
    smallest_searched: float | None = None  # the smallest face (px) those looks could find
    tiled: np.ndarray | None = None  # (N,) bool: found by tiles alone, where the look at the whole photo saw nothing
    not_faces: int = 0  # detections left out after landmarking: tiles' finds the network saw no face in (answers)

    def __post_init__(self):
        if self.tilts is None:
            self.tilts = np.zeros(len(self.scores))
        if self.tiled is None:
            self.tiled = np.zeros(len(self.scores), bool)

    @property
    def rolls(self) -> np.ndarray:
        return crop_rolls(self.tilts)

    def framed(self, index, rolls) -> np.ndarray:
        """The landmark boxes of faces `index` cropped turned by `rolls` (degrees): the mapping's offset turns with
        the crop. Where the landmarker finds a face tilted otherwise than the detector's keypoints said (near 90
        degrees they may point the wrong way), its box keeps the face centred (passes.face_passes)."""
        if self.mapping is None:
            return self.boxes[index]
        return self.mapping.apply(self.detector_boxes[index], rolls)

    def rescaled(self, k: float) -> "Detections":
        """The same faces in a copy of the photo k times as large (a finer or coarser decode, decode_scale): boxes
        scale about the origin, as continuous coordinates; the face search is not run again."""
        return replace(self, boxes=self.boxes * k, detector_boxes=self.detector_boxes * k,
                       smallest_searched=None if self.smallest_searched is None else self.smallest_searched * k)

    def __getitem__(self, index) -> "Detections":
        return Detections(self.boxes[index], self.detector_boxes[index], self.scores[index], self.tilts[index],
                          self.mapping, self.looks, self.upside_down_look, self.smallest_searched, self.tiled[index],
                          self.not_faces)

    def __len__(self) -> int:
        return len(self.scores)


class FaceDetector:
    """BlazeFace on a letterboxed, downscaled copy of the image. Thread-safe (one OpenCV net, one lock: a
    detection takes a few ms and cv2.dnn nets must not run concurrently)."""

    def __init__(self, model_path=MODEL_PATH, mapping: BoxMapping | None = None,
                 score_threshold: float = SCORE_THRESHOLD):
        path = Path(model_path)
        if not path.is_file():
            raise FileNotFoundError(f"face detector model not found: {path} "
                                    "(run landmarks/detector_assets/extract_blazeface.py)")
        # OpenCV 5's new dnn engine exposes only one of the model's two outputs; the classic one reads both
        engine = getattr(cv2.dnn, "ENGINE_CLASSIC", None)
        self.net = cv2.dnn.readNetFromTFLite(str(path), engine=engine) if engine is not None \
            else cv2.dnn.readNetFromTFLite(str(path))
        self.anchors = ssd_anchors()
        self.mapping = mapping if mapping is not None else (BoxMapping.load() if MAPPING_PATH.exists() else BoxMapping())
        self.score_threshold = float(score_threshold)
        self._lock = threading.Lock()

    def raw_detect(self, image_rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """-> (detector boxes (N, 4) in image px, scores (N,), rolls (N,) in degrees), best first, after
        suppression. The roll is the tilt of the line through the two eye keypoints that BlazeFace predicts with
        each box (MediaPipe turns its landmark crops by the same line)."""
        return _suppressed(*self._anchor_rows(image_rgb))[:3]

    def _anchor_rows(self, image_rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """One look at the whole of `image_rgb`: (rows (N, 8): box and the two eye keypoints in image px, scores
        (N,)) of the anchors above the score threshold, before suppression."""
        h, w = image_rgb.shape[:2]
        f = INPUT_SIZE / max(h, w)
        return self._rows_at_scale(_resized(image_rgb, f), f)

    def _rows_at_scale(self, small: np.ndarray, f: float) -> tuple[np.ndarray, np.ndarray]:
        """_anchor_rows of an image already scaled by `f` to at most the input size, in the unscaled image's px."""
        # image pinned to the top-left corner of the square input: the inverse is a single division by f
        canvas = np.zeros((INPUT_SIZE, INPUT_SIZE, 3), np.float32)
        canvas[:small.shape[0], :small.shape[1]] = small.astype(np.float32) / 127.5 - 1.0
        # the padding is black in the model's range: -1, as MediaPipe's letterbox
        canvas[small.shape[0]:, :] = -1.0
        canvas[:, small.shape[1]:] = -1.0
        with self._lock:
            self.net.setInput(np.ascontiguousarray(canvas.transpose(2, 0, 1)[None]))
            logits, regress = self.net.forward(["classificators", "regressors"])
        logits = np.clip(logits.reshape(-1).astype(np.float64), -RAW_SCORE_LIMIT, RAW_SCORE_LIMIT)
        scores = 1.0 / (1.0 + np.exp(-logits))
        keep = scores >= self.score_threshold
        if not keep.any():
            return np.zeros((0, 8)), np.zeros(0)
        r = regress.reshape(-1, 16)[keep].astype(np.float64) / INPUT_SIZE
        anchors = self.anchors[keep]
        centre = r[:, :2] + anchors
        boxes = np.concatenate([centre - r[:, 2:4] / 2, centre + r[:, 2:4] / 2], 1)
        # keypoints 0 and 1: the face's right and left eye (MediaPipe's order), offsets from the anchor like the centre
        eyes = np.concatenate([r[:, EYES[0]] + anchors, r[:, EYES[1]] + anchors], 1)
        rows = np.concatenate([boxes, eyes], 1) * (INPUT_SIZE / f)
        valid = (rows[:, 2] > rows[:, 0]) & (rows[:, 3] > rows[:, 1])
        return rows[valid], scores[keep][valid]

    def _tiled_rows(self, image_rgb: np.ndarray, looks: list["Look"], scaled: dict | None = None
                    ) -> tuple[np.ndarray, np.ndarray]:
        """The anchors of every look, in photo px, ready for one suppression: a tile keeps only those centred in its
        share of the photo, at most half its side (larger faces are the coarser looks', and a face cut by the
        tile's border is seen whole by a neighbour) and scored at least TILE_SCORE. A last column marks the tiles'
        anchors (1) against the whole photo's (0)."""
        all_rows, all_scores = [], []
        # one downscaled copy of the photo per look size (kept in `scaled` for the caller): a tile is cut from it at
        # the input size
        scaled = {} if scaled is None else scaled
        for look in looks:
            f = INPUT_SIZE / look.side
            if look.side not in scaled:
                scaled[look.side] = _resized(image_rgb, f)
            x, y = round(look.x * f), round(look.y * f)
            rows, scores = self._rows_at_scale(scaled[look.side][y:y + INPUT_SIZE, x:x + INPUT_SIZE], f)
            rows = rows + np.tile([x / f, y / f], 4)
            if look.core is not None:
                x1, y1, x2, y2 = look.core
                centre = _centre(rows[:, :4])
                mine = ((centre[:, 0] >= x1) & (centre[:, 0] < x2) & (centre[:, 1] >= y1) & (centre[:, 1] < y2)
                        & (_side(rows[:, :4]) <= look.side / 2) & (scores >= max(self.score_threshold, TILE_SCORE)))
                rows, scores = rows[mine], scores[mine]
            all_rows.append(np.concatenate([rows, np.full((len(rows), 1), float(look.core is not None))], 1))
            all_scores.append(scores)
        return np.concatenate(all_rows), np.concatenate(all_scores)

    def tilt_at(self, image_rgb: np.ndarray, box) -> FaceTurn | None:
        """The tilt in degrees (face_roll's convention) of the face in a landmark-convention `box`, by the eye
        keypoints of the detection nearest the box's centre in a crop around it, with the face's box as the detector
        sees it there (a FaceTurn); None where no face is found whose centre lies in the box. The face is looked at
        in an upright crop and in one turned by UPSIDE_DOWN: BlazeFace takes an upside-down face for an upright one
        but scores it lower than the same face the right way up, so the look that scores higher gives the tilt. A
        face found turned by passes.FAR_TURN or more is looked at once more in a crop turned by that estimate, where
        it is near upright and the keypoints and box are most accurate (every third dev face turned by 90 degrees:
        28 degrees mean error at one look, 15 at two). What the landmarker asks about a face it is unsure of
        (passes.turn_unsure): a caller's box says nothing of the tilt, and the detector's estimate on the whole photo
        is far off for some faces near 90 degrees and for faces upside down, which a crop of the face's region gets
        closer (bench/rotation.py)."""
        looks = [look for look in (self._look_in_crop(image_rgb, box, roll) for roll in (0.0, UPSIDE_DOWN))
                 if look is not None]
        if not looks:
            return None
        _, tilt, seen = max(looks, key=lambda look: look[0])
        if abs(tilt) >= FAR_TURN:
            again = self._look_in_crop(image_rgb, box, tilt)
            if again is not None:
                _, tilt, seen = again
        return FaceTurn(tilt, self.mapping.apply(seen[None], crop_rolls([tilt]))[0])

    def _look_in_crop(self, image_rgb, box, roll: float) -> tuple[float, float, np.ndarray] | None:
        """(score, tilt, the detector's box in image px) of the face nearest the centre of a crop around `box`
        turned by `roll`; the box is axis-aligned in the crop's frame, so only its centre and sides hold in the
        image's."""
        crop, m = crop_face(validate_image(image_rgb), scale_box(box, TILT_SEARCH), INPUT_SIZE, roll)
        boxes, scores, tilts = self.raw_detect(crop)
        if not len(boxes):
            return None
        off_centre = np.linalg.norm(_centre(boxes) - (INPUT_SIZE - 1) / 2, axis=1)
        nearest = int(np.argmin(off_centre))
        box_half_side = INPUT_SIZE / (2 * TILT_SEARCH * CROP_EXPAND)  # crop_face frames a box CROP_EXPAND times
        if off_centre[nearest] > box_half_side:
            return None
        # BlazeFace's boxes, like the whole photo's, are in continuous coordinates (a pixel spans [i, i + 1)), while
        # crop matrices map pixel centres: half a pixel each way, a few image pixels on a face seen small in its crop
        centre = transform_points(_centre(boxes[[nearest]]) - 0.5, invert_affine(m))[0] + 0.5
        half = (boxes[nearest, 2:] - boxes[nearest, :2]) / 2 / np.sqrt(abs(np.linalg.det(m[:, :2])))
        return float(scores[nearest]), float(wrap_degrees(roll + tilts[nearest])), np.concatenate([centre - half,
                                                                                                   centre + half])

    def detect(self, image_rgb: np.ndarray, max_faces: int | None = None, min_face_size: float = 0.0,
               small_faces: bool = False, max_tiles: int = MAX_TILES) -> Detections:
        """Faces in an RGB uint8 image, best first. `max_faces`: keep the best this many; `min_face_size`: drop
        faces whose landmark box is smaller (longer side, px). `small_faces`: besides the one look at the whole
        photo, look for faces down to `min_face_size` in overlapping tiles of it where that look cannot see them (at
        most `max_tiles` tiles; the answer's `smallest_searched` says how far the search reached). Where those
        looks find no face or one scored under UNSURE_SCORE, the whole photo is looked at once more turned upside
        down (_with_upside_down_look)."""
        image_rgb = validate_image(image_rgb)
        h, w = image_rgb.shape[:2]
        looks, smallest = plan_looks(w, h, min_face_size if small_faces else None, max_tiles)
        scaled = {}
        found = _suppressed(*self._tiled_rows(image_rgb, looks, scaled))
        upside_down = not len(found[1]) or bool(found[1].min() < UNSURE_SCORE)
        if upside_down:  # the whole photo's look left its downscaled copy in `scaled`
            found = _with_upside_down_look(found, self._upside_down_look(scaled[looks[0].side], w, h))
        det_boxes, scores, tilts, tiled = found
        boxes = self.mapping.apply(det_boxes, crop_rolls(tilts))
        big = np.maximum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]) >= min_face_size
        # a box mostly outside the photo is a face cut by the border that the landmark model cannot see
        inside = box_inside_fraction(boxes, w, h) >= 0.5
        keep = np.flatnonzero(big & inside)[:max_faces]
        return Detections(boxes, det_boxes, scores, tilts, self.mapping, len(looks) + upside_down, upside_down,
                          smallest, tiled)[keep]

    def _upside_down_look(self, small: np.ndarray, w: int, h: int
                          ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """_suppressed's answer for a look at the whole `w` x `h` photo turned by 180 degrees (`small`: the photo
        downscaled onto the input, as its upright look saw it), in the photo's own px and with each face's tilt in
        the photo."""
        f = INPUT_SIZE / max(h, w)
        det_boxes, scores, tilts, tiled = _suppressed(*self._rows_at_scale(np.ascontiguousarray(small[::-1, ::-1]), f))
        # BlazeFace's boxes are in continuous coordinates (a pixel spans [i, i + 1)), so turning back is w - x
        det_boxes = np.stack([w - det_boxes[:, 2], h - det_boxes[:, 3], w - det_boxes[:, 0], h - det_boxes[:, 1]], 1)
        return det_boxes.reshape(-1, 4), scores, wrap_degrees(tilts + UPSIDE_DOWN), tiled


def _with_upside_down_look(upright, turned):
    """Two looks' faces (_suppressed's answers) -> one answer, best first. BlazeFace takes a face turned by 180
    degrees for an upright one and scores it lower (or misses it: 32 of 107 dev photos, 189 of 770 video frames), and
    the look at the turned photo sees it upright: of two boxes of one face (overlapping by NMS_IOU) the higher score
    stands, with the tilt of its look. The turned look's faces count from UPSIDE_DOWN_SCORE only."""
    up_boxes, up_scores = upright[0], upright[1]
    keep_up, keep_turned = np.ones(len(up_scores), bool), turned[1] >= UPSIDE_DOWN_SCORE
    for j in np.flatnonzero(keep_turned):
        same_face = box_iou(turned[0][j], up_boxes) > NMS_IOU
        if (up_scores[same_face] >= turned[1][j]).any():
            keep_turned[j] = False
        else:
            keep_up &= ~same_face
    merged = [np.concatenate([a[keep_up], b[keep_turned]]) for a, b in zip(upright, turned)]
    order = np.argsort(-merged[1], kind="stable")
    return tuple(part[order] for part in merged)


@dataclass(frozen=True)
class Look:
    """A square region of the photo the detector sees at its input size (one that runs past the photo's right or
    bottom edge is letterboxed). `core`: the part whose faces this look answers for; None for the whole photo."""
    x: int
    y: int
    side: int
    core: tuple[float, float, float, float] | None = None


def tile_origins(length: int, side: int) -> tuple[np.ndarray, np.ndarray]:
    """Origins of tiles of `side` px along an axis of `length` px, overlapping by at least half a side (so that any
    face up to half a side lies wholly in one), and the bounds of each tile's share: the middle of each overlap."""
    if length <= side:
        return np.zeros(1, int), np.array([0.0, float(length)])
    n = int(np.ceil((length - side) / (side / 2))) + 1
    origins = np.round(np.linspace(0, length - side, n)).astype(int)
    bounds = np.concatenate([[0.0], (origins[1:] + origins[:-1] + side) / 2, [float(length)]])
    return origins, bounds


def plan_looks(width: int, height: int, down_to: float | None, max_tiles: int = MAX_TILES) \
        -> tuple[list[Look], float]:
    """-> (the looks for faces down to `down_to` px, the smallest face size they can find). The whole photo first,
    then levels of tiles, each of half the side of the one before, until a tile's SMALLEST_SHARE reaches `down_to`
    (None: the whole photo only). A level that would pass `max_tiles` tiles in all, or make tiles smaller than the
    detector's input, is not run: the search stops at the level before."""
    longer = max(width, height)
    looks = [Look(0, 0, longer)]
    side, reach = float(longer), SMALLEST_SHARE * longer
    while down_to is not None and down_to < reach and side / 2 >= INPUT_SIZE:
        side /= 2
        tile = int(round(side))
        (xs, x_bounds), (ys, y_bounds) = tile_origins(width, tile), tile_origins(height, tile)
        if len(looks) - 1 + len(xs) * len(ys) > max_tiles:
            break
        looks += [Look(int(x), int(y), tile, (x_bounds[i], y_bounds[j], x_bounds[i + 1], y_bounds[j + 1]))
                  for j, y in enumerate(ys) for i, x in enumerate(xs)]
        reach = SMALLEST_SHARE * tile
    return looks, reach


def _resized(image_rgb: np.ndarray, f: float) -> np.ndarray:
    h, w = image_rgb.shape[:2]
    size = (max(1, round(w * f)), max(1, round(h * f)))
    return area_resized(image_rgb, size) if f < 1 else cv2.resize(image_rgb, size, interpolation=cv2.INTER_LINEAR)


def _suppressed(rows: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Anchor rows -> (boxes, scores, tilts by the eye keypoints in degrees, found by tiles alone), best first, after
    suppression. A ninth column marks tile anchors: blended by the suppression, it stays 1 only where no anchor of
    the whole photo's look went into the face."""
    if not len(rows):
        return np.zeros((0, 4)), np.zeros(0), np.zeros(0), np.zeros(0, bool)
    kept, kept_scores = weighted_nms(rows, scores)
    line = kept[:, 6:8] - kept[:, 4:6]
    tiled = kept[:, 8] > 1 - 1e-9 if kept.shape[1] > 8 else np.zeros(len(kept), bool)
    return kept[:, :4], kept_scores, np.degrees(np.arctan2(line[:, 1], line[:, 0])), tiled


def box_inside_fraction(boxes: np.ndarray, width: int, height: int) -> np.ndarray:
    b = np.asarray(boxes, np.float64).reshape(-1, 4)
    ix = np.clip(np.minimum(b[:, 2], width) - np.maximum(b[:, 0], 0), 0, None)
    iy = np.clip(np.minimum(b[:, 3], height) - np.maximum(b[:, 1], 0), 0, None)
    return ix * iy / np.maximum((b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1]), 1e-12)

"""Which crops of a photo's faces the landmark network sees, pass after pass: the first at the boxes given, the
faces it is unsure of turned by a face detector's tilt, a second pass framed by the first pass's points, and how
the answers combine. One implementation for the synchronous landmarker (run_passes) and the service's batcher:
face_passes yields each pass's crops and is sent the network's answer (numpy only)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from landmarks import geometry

# Degrees of roll from which a crop turns with the face (the detector's estimate for the first pass, the first pass's
# points for the second): training turns faces by at most 30, and beyond about 20 the error grows (bench/rotation.py)
TILTED = 20.0
# Mean heatmap peak under which a first pass may have seen a face turned too far for its points to tell the tilt: every
# upright dev face scores above 0.73, every dev face turned by 75 degrees below 0.62 (bench/rotation.py)
LOW_CONFIDENCE = 0.7
# Degrees of tilt from which BlazeFace's eye keypoints err more (dev faces turned by 90 degrees: 29 degrees on average,
# against 2-4 up to 45; bench/rotation.py)
FAR_TURN = 45.0

# Turns tried on a face still unsure after the detector's look, added to its crop's: near 90 degrees BlazeFace's
# keypoints sometimes point the wrong way (bench/rotation.py). Every 45 degrees leaves the nearest try within 22.5 of
# upright, where the network is sure of a face again
OTHER_TURNS = (45.0, 90.0, 135.0, 180.0, -135.0, -90.0, -45.0)
# The turn tried on an unsure face that the detector and the points leave as it is (turn_unsure), and what the
# network's mean heatmap peak on that crop must reach for it to stand: more than the first crop's by the margin, and
# the floor. At a box sent, unsure faces upright to 45 degrees scored that crop at most 0.13 higher on p1-ytf68 frames
# (a frame at 30 degrees, whose 0.51 the floor keeps out: turned by 180 it fails) and 0.09 on dev; detected faces
# upright and at 30 degrees never higher. Of the detected faces upside down, 60 of 75 on dev and 253 of 294 frames
# clear both (bench/rotation.py)
UPSIDE_DOWN = 180.0
UPSIDE_DOWN_MARGIN = 0.1
UPSIDE_DOWN_FLOOR = 0.55


class FaceTurn(NamedTuple):
    """What a face detector says of the face in a box (FaceDetector.tilt_at): its tilt in degrees (face_roll's
    convention) and, where it measured one, the face's landmark box in its own upright frame when cropped turned by
    crop_rolls(tilt)."""
    tilt: float
    box: np.ndarray | None = None


class Aligned(NamedTuple):
    landmarks: np.ndarray  # (N, M, 2) image px
    confidence: np.ndarray  # (N, M)
    passes: np.ndarray  # (N,) network passes each face went through
    boxes: np.ndarray  # (N, 4) each face's box at its final turn (face_passes' `framed`), before the second pass
    rolls: np.ndarray  # (N,) degrees each face's crop at its box was finally turned by


def face_passes(image_rgb, boxes, rolls=None, recrop: bool | None = None, eye_indices=None, tilt_at=None,
                framed=None):
    """A generator over the network passes for one photo's faces: it yields each pass's crops (boxes (K, 4), rolls
    (K,)), is sent that pass's (landmarks (K, M, 2), confidence (K, M)) and returns an Aligned. `framed(index,
    rolls) -> boxes`: the boxes of faces `index` when cropped turned by `rolls` (Detections.framed: a detector's box
    maps onto the landmark box with an offset that turns with the face); none: a face keeps its box at every turn.
    With `framed` the faces are detected ones, and a face cropped at the turn `tilt_at` gives is cropped at the box it
    gives there too (FaceTurn.box: the detector's look at the face, turned the right way up, boxes it better than the
    whole photo's look did); a box sent stays the caller's, and the other turns of step 2 are framed by `framed`.

    1. Every face at its box, turned by `rolls` (a detector's estimate; none: upright).
    2. With `tilt_at` and `recrop` not False: the faces the first pass is unsure of (mean confidence under
       LOW_CONFIDENCE) are cropped again where the detector finds them turned otherwise or turned far (at its
       tilt), and where it leaves them as they are or finds nothing (upside down, UPSIDE_DOWN); each crop stands
       where the network is surer of it than of the first (the detector too can be wrong; the upside-down crop by
       UPSIDE_DOWN_MARGIN, and UPSIDE_DOWN_FLOOR sure). A face whose tilt stays in doubt (turn_unsure) and that is
       still unsure is also cropped turned by each of OTHER_TURNS more, and a turn the network is sure of
       (LOW_CONFIDENCE) and surest of stands (surest).
    3. `recrop` True: a second pass on every face; None: on the tilted ones only; False: none (second_pass,
       merge_passes)."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    rolls = np.zeros(len(boxes)) if rolls is None else np.array(rolls, dtype=np.float64).reshape(-1)
    detected = framed is not None
    if framed is None:
        def framed(index, _rolls):
            return boxes[index]
    answer = yield boxes, rolls
    passes = np.ones(len(boxes), int)
    crops = (boxes, rolls)
    if recrop is False or not len(boxes):
        return Aligned(*answer, passes, *crops)
    if tilt_at is not None:
        unsure = np.flatnonzero(mean_confidence(answer[1]) < LOW_CONFIDENCE)
        index, turned, flipped, doubtful, seen_boxes = turn_unsure(image_rgb, boxes, rolls, answer, eye_indices,
                                                                   tilt_at, unsure)
        if len(index):
            at = framed(index, turned)
            if detected:
                # the detector's box of the face at its turn: the whole photo's look boxes a face turned by 120 degrees
                # or more far off (IoU 0.3-0.5 with its points' box on dev)
                at = np.where(np.isfinite(seen_boxes), seen_boxes, at)
            tries = (at, turned)
            answer, crops = surest(answer, crops, index, (yield tries), tries,
                                   at_least=np.where(flipped, UPSIDE_DOWN_FLOOR, 0.0),
                                   by=np.where(flipped, UPSIDE_DOWN_MARGIN, 0.0))
            passes[index] += 1
        still = doubtful[mean_confidence(answer[1][doubtful]) < LOW_CONFIDENCE]
        if len(still):
            which = np.repeat(still, len(OTHER_TURNS))
            other_rolls = geometry.wrap_degrees(crops[1][still, None] + np.asarray(OTHER_TURNS)).ravel()
            tries = (framed(which, other_rolls), other_rolls)
            answer, crops = surest(answer, crops, still, (yield tries), tries, at_least=LOW_CONFIDENCE)
            passes[still] += 1
    plan = second_pass(answer[0], crops[0], eye_indices, every=bool(recrop), rolls=crops[1])
    if len(plan.index):
        answer = merge_passes(answer, (yield plan.boxes, plan.rolls), plan)
        passes[plan.index] += 1
    return Aligned(*answer, passes, *crops)


def run_passes(passes, run) -> Aligned:
    """Drives face_passes with `run(boxes, rolls) -> (landmarks, confidence)`."""
    request = next(passes)
    while True:
        try:
            request = passes.send(run(*request))
        except StopIteration as done:
            return done.value


def crop_rolls(tilts) -> np.ndarray:
    """Degrees each crop is turned by: the tilt where it reaches TILTED, else 0 (an upright face is cropped as the
    model's training crops were)."""
    tilts = np.asarray(tilts, np.float64)
    return np.where(np.abs(tilts) >= TILTED, tilts, 0.0)


def eye_indices_for(card: dict) -> tuple[int, int] | None:
    """The outer eye corners of a model card's landmark layout, from the dataset registry (the corners that
    normalise its NME): what tells the second pass how a face is tilted. None for a layout the registry does not
    know, whose second pass then keeps the turn of each face's first crop."""
    from landmarks.datasets import get_info

    try:
        info = get_info(card.get("dataset", ""))
    except ValueError:
        return None
    return info.norm_indices if card.get("num_landmarks", info.num_landmarks) == info.num_landmarks else None


class Turns(NamedTuple):
    """What turn_unsure plans for the faces the first pass is unsure of."""
    index: np.ndarray  # (K,) the faces cropped again...
    rolls: np.ndarray  # (K,) ...turned by these degrees
    upside_down: np.ndarray  # (K,) bool: the face's crop turned by UPSIDE_DOWN, held to its margin and floor
    doubtful: np.ndarray  # faces whose tilt stays in doubt: tried at OTHER_TURNS too where still unsure after that
    boxes: np.ndarray  # (K, 4) the detector's box of the face at the turn tried (FaceTurn.box); NaN where none


def turn_unsure(image_rgb, boxes, rolls, first, eye_indices, tilt_at, unsure) -> Turns:
    """The crops to try for the faces the first pass is unsure of (`unsure`, the indices whose mean confidence is
    under LOW_CONFIDENCE). A first pass on a face turned by more than ~45 degrees from its crop gives points too poor
    to measure the tilt, and is unsure of them. Each is looked at by `tilt_at(image, box)`, a face detector's FaceTurn
    for the face in `box` (None: no face there; FaceDetector.tilt_at, which tells upside-down faces from upright ones):
    - where that tilt turns its crop by TILTED or more and its points disagree with it by as much, the face is cropped
      again at that tilt (the Turns carry the detector's box of it there), and stays in doubt;
    - where they agree on a tilt beyond FAR_TURN, both can be wrong the same way: the face is cropped again at that
      tilt too and stays in doubt (one crop at the agreed tilt first, where the other turns came straight away before,
      costs the dev faces turned by 60 degrees 2.9 crops instead of 6.4 at the same NME; bench/rotation.py);
    - any other face, one the detector keeps at its crop's turn or agrees with the points on a smaller tilt (the
      second pass then turns the crop by the points), may still be upside down where the detector's two looks erred
      (BlazeFace takes an upside-down face for an upright one, scoring it lower) and the points followed. It is
      cropped once more turned by UPSIDE_DOWN from its crop, which stands only where the network is surer of it by
      UPSIDE_DOWN_MARGIN and at least UPSIDE_DOWN_FLOOR sure; it is not in doubt (trying the other turns on such
      faces picked wrong ones on blurred frames);
    - a face the detector finds nothing for (often upside down too) gets that crop and stays in doubt."""
    landmarks = first[0]
    index, new_rolls, flipped, doubtful, seen_boxes = [], [], [], [], []

    def upside_down(i):
        index.append(i)
        new_rolls.append(float(geometry.wrap_degrees(rolls[i] + UPSIDE_DOWN)))
        flipped.append(True)
        seen_boxes.append(np.full(4, np.nan))

    for i in unsure:
        found = tilt_at(image_rgb, boxes[i])
        if found is None:
            upside_down(i)
            doubtful.append(i)
            continue
        tilt = found.tilt
        roll = float(crop_rolls(tilt))
        seen = eye_indices is not None and bool(np.all(np.isfinite(landmarks[i]))) and \
            geometry.angle_difference(geometry.face_roll(landmarks[i], eye_indices), tilt) < TILTED
        far = seen and abs(tilt) >= FAR_TURN
        if geometry.angle_difference(roll, rolls[i]) >= TILTED and (far or not seen):
            index.append(i)
            new_rolls.append(roll)
            flipped.append(False)
            doubtful.append(i)
            seen_boxes.append(np.full(4, np.nan) if found.box is None else np.asarray(found.box, np.float64))
        elif far:  # its crop is already at the agreed tilt
            doubtful.append(i)
        else:
            upside_down(i)
    return Turns(np.asarray(index, dtype=int), np.asarray(new_rolls, dtype=np.float64),
                 np.asarray(flipped, dtype=bool), np.asarray(doubtful, dtype=int),
                 np.asarray(seen_boxes, dtype=np.float64).reshape(-1, 4))


def mean_confidence(confidence) -> np.ndarray:
    """(K, M) heatmap peaks -> (K,) each face's mean."""
    return np.asarray(confidence, dtype=np.float64).mean(axis=1)


def surest(answer, crops, index, tries, try_crops, at_least=0.0, by=0.0):
    """(answer, crops) over all faces with each face of `index` answered by whichever of its crop and its tries the
    network is surest of (mean confidence), a try only where that is `at_least` too and surer than the crop by more
    than `by` (each one for all, or one per face of `index`). `crops` and `try_crops` are (boxes, rolls); `tries`
    (landmarks, confidence) and `try_crops` hold each face's tries in turn, as many per face."""
    per_face = len(try_crops[1]) // len(index)
    landmarks, confidence = (np.array(a) for a in answer)
    boxes, rolls = (np.array(a) for a in crops)
    sure = mean_confidence(tries[1]).reshape(len(index), per_face)
    at_least, by = (np.broadcast_to(np.asarray(v, dtype=np.float64), (len(index),)) for v in (at_least, by))
    for k, i in enumerate(index):
        best = int(np.argmax(sure[k]))
        if sure[k, best] > mean_confidence(confidence[i:i + 1])[0] + by[k] and sure[k, best] >= at_least[k]:
            t = k * per_face + best
            landmarks[i], confidence[i], boxes[i], rolls[i] = tries[0][t], tries[1][t], try_crops[0][t], try_crops[1][t]
    return (landmarks, confidence), (boxes, rolls)


@dataclass(frozen=True)
class SecondPass:
    """The faces to crop again and where (`second_pass`)."""
    index: np.ndarray  # (K,) which faces of the first pass
    boxes: np.ndarray  # (K, 4)
    rolls: np.ndarray  # (K,) degrees
    tilted: np.ndarray  # (K,) bool: the crop is turned upright and its answer replaces the first pass's


def second_pass(landmarks, boxes, eye_indices=None, every: bool = True, rolls=None) -> SecondPass:
    """The second pass's crops, for every face or (`every=False`) for the tilted ones only. The model learnt on
    upright faces in crops boxed by their true points (training turns them by at most 30 degrees), so a second look
    is framed that way whatever box the caller had (a detector's, a tracker's). A face whose points roll at least
    TILTED degrees (geometry.face_roll at the outer eye corners `eye_indices`) is cropped turned upright at the box
    of its points in that frame: its first pass saw it tilted, so the second answer stands alone. Any other face is
    cropped upright at the box of its points and the two answers are averaged (merge_passes; bench/rotation.py
    measured both rules). Without eye corners, or where the points are not finite, a face keeps the turn of its first
    crop (`rolls`, none: upright) and the answers are averaged; a face whose points collapsed onto a line also keeps
    its box."""
    out = np.array(boxes, dtype=np.float64).reshape(-1, 4)
    first = np.zeros(len(out)) if rolls is None else np.asarray(rolls, dtype=np.float64).reshape(-1)
    out_rolls, tilted = first.copy(), np.zeros(len(out), bool)
    for i, pts in enumerate(landmarks):
        if not np.all(np.isfinite(pts)):
            continue
        roll = first[i]
        if eye_indices is not None:
            measured = geometry.face_roll(pts, eye_indices)
            roll = measured if abs(measured) >= TILTED else 0.0
            tilted[i] = roll != 0
        box = geometry.upright_box(pts, roll)
        if box[2] > box[0] and box[3] > box[1]:
            out[i], out_rolls[i] = box, roll
        else:
            tilted[i] = False
    index = np.arange(len(out)) if every else np.flatnonzero(tilted)
    return SecondPass(index, out[index], out_rolls[index], tilted[index])


def merge_passes(first, second, plan: SecondPass | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(landmarks, confidence) of the first pass and of the second pass over `plan.index` -> each face's answer: the
    mean of both, the second alone for a tilted face, the first where no second pass ran. Without a plan the two
    passes cover the same faces and are averaged. The second pass alone is worse where the first box was already
    the true points' box (bench/recrop.py): its box carries the first pass's errors. The mean is about level with
    one pass there and better at every other kind of box measured."""
    out = [np.array(a) for a in first]
    index = np.arange(len(out[0])) if plan is None else plan.index
    tilted = np.zeros(len(index), bool) if plan is None else plan.tilted
    for o, a, b in zip(out, first, second):
        b = np.asarray(b)
        o[index] = np.where(tilted.reshape(-1, *([1] * (b.ndim - 1))), b, (np.asarray(a)[index] + b) / 2)
    return tuple(out)

"""Landmarks for face boxes through a served model's batcher: what /align and /evaluate run."""
import asyncio
import time

import numpy as np

from .errors import InputError


def flip_pairs_of(model) -> list:
    pairs = model.card.get("flip_pairs")
    if not pairs:
        raise InputError(f"model {model.name} v{model.version} has no flip pairs in its model card, so it cannot "
                         "run the flip test; drop flip=true")
    return [tuple(p) for p in pairs]


def eye_indices_of(model) -> tuple[int, int] | None:
    from landmarks.landmarker import eye_indices_for

    return eye_indices_for(model.card)


async def align_faces(model, image: np.ndarray, boxes: np.ndarray, flip_pairs=None, recrop: bool | None = False,
                      rolls=None) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict]:
    """Landmarks for `boxes` (each turned by `rolls` degrees, a detector's estimate) in `image` through the model's
    batcher; shared with /evaluate. -> (landmarks, confidence, passes per face, timing ms). With `flip_pairs` the
    flip test: the mirrored crops go through the network too and the heatmaps are averaged. `recrop`: a second pass
    from the first pass's points on every face; None: on tilted faces only (landmarks.landmarker.second_pass)."""
    from landmarks.landmarker import merge_passes, second_pass

    timing: dict[str, float] = {}
    answer = await _one_pass(model, image, boxes, rolls, flip_pairs, timing)
    passes = np.ones(len(boxes), int)
    if recrop is not False and len(boxes):
        plan = second_pass(answer[0], boxes, eye_indices_of(model), every=bool(recrop), rolls=rolls)
        if len(plan.index):
            second = await _one_pass(model, image, plan.boxes, plan.rolls, flip_pairs, timing)
            answer = merge_passes(answer, second, plan)
            passes[plan.index] = 2
    return np.asarray(answer[0]), np.asarray(answer[1]), passes, timing


async def _one_pass(model, image, boxes, rolls, flip_pairs, timing: dict) -> tuple[np.ndarray, np.ndarray]:
    """Adds its milliseconds to `timing` (a second pass adds to the first's)."""
    from landmarks.landmarker import flip_batch, heatmaps_to_landmarks, prepare_faces

    t0 = time.perf_counter()
    batch, transforms = await asyncio.to_thread(prepare_faces, image, boxes, model.input_size, rolls)
    batch = np.ascontiguousarray(batch, dtype=np.float32)
    t1 = time.perf_counter()
    flip_heatmaps = None
    if flip_pairs is None:
        heatmaps = await model.batcher.submit(batch)
    else:  # submitted together, the two passes can share one network call
        heatmaps, flip_heatmaps = await asyncio.gather(model.batcher.submit(batch),
                                                       model.batcher.submit(flip_batch(batch)))
    t2 = time.perf_counter()
    landmarks, confidence = await asyncio.to_thread(heatmaps_to_landmarks, heatmaps, transforms, flip_heatmaps,
                                                    flip_pairs)
    t3 = time.perf_counter()
    for key, ms in (("prepare", t1 - t0), ("inference", t2 - t1), ("decode_heatmaps", t3 - t2)):
        timing[key] = timing.get(key, 0.0) + ms * 1e3
    return landmarks, confidence

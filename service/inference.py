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
    from landmarks.passes import eye_indices_for

    return eye_indices_for(model.card)


async def align_faces(model, image: np.ndarray, boxes: np.ndarray, flip_pairs=None, recrop: bool | None = False,
                      rolls=None, tilt_at=None, framed=None) -> tuple:
    """Landmarks for `boxes` (each turned by `rolls` degrees, a detector's estimate) in `image` through the model's
    batcher; shared with /evaluate. -> (landmarks, confidence, passes per face, final crop boxes, final crop rolls,
    timing ms): the passes of landmarks.passes.face_passes (`recrop`, `tilt_at`, `framed`), whose planning and
    detector looks run in a thread. With `flip_pairs` the flip test: the mirrored crops go through the network too
    and the heatmaps are averaged."""
    from landmarks.passes import face_passes

    timing: dict[str, float] = {}
    plan = face_passes(image, boxes, rolls, recrop, eye_indices_of(model), tilt_at, framed)
    finished, step = await _advance(plan, None, timing)
    while not finished:
        answer = await _one_pass(model, image, *step, flip_pairs, timing)
        finished, step = await _advance(plan, answer, timing)
    return (*step, timing)


async def _advance(plan, answer, timing: dict) -> tuple[bool, object]:
    """One step of face_passes in a thread -> (finished, the next pass's crops or the Aligned answer)."""
    def step():  # StopIteration cannot cross a future, so it becomes a flag here
        try:
            return False, (next(plan) if answer is None else plan.send(answer))
        except StopIteration as done:
            return True, done.value

    t0 = time.perf_counter()
    out = await asyncio.to_thread(step)
    timing["plan"] = timing.get("plan", 0.0) + (time.perf_counter() - t0) * 1e3
    return out


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

"""POST /align: landmarks for the faces in one image."""
import asyncio
import time

import numpy as np
from fastapi import APIRouter, Query, Request

from landmarks.answers import (default_recrop, drop_non_faces, face_answers, faces_in_photo, photo_at_boxes,
                               search_answer)
from landmarks.face_detector import MAX_TILES, SMALLEST_SHARE

from ..deps import Metrics, Models, Settings
from ..detection import check_max_faces, find_faces, tilt_checker
from ..images import decoded
from ..inference import align_faces, eye_indices_of, flip_pairs_of
from ..requests import open_and_check, read_align_body
from ..schemas import DATASET_PATTERN, AlignRequest, AlignResponse, problem_responses
from ..security import AlignKey

router = APIRouter(tags=["align"])

MULTIPART_SCHEMA = {
    "type": "object",
    "required": ["image"],
    "properties": {
        "image": {"type": "string", "format": "binary", "description": "the image file"},
        "boxes": {"type": "string", "description": "JSON list of [x1, y1, x2, y2] boxes in image pixels; leave the "
                  "field out to have the faces detected",
                  "example": "[[40, 40, 200, 220]]"},
    },
}
ALIGN_BODY = {"requestBody": {"required": True, "content": {
    "application/json": {"schema": AlignRequest.model_json_schema(ref_template="#/components/schemas/{model}")},
    "multipart/form-data": {"schema": MULTIPART_SCHEMA},
}}, "security": [{}]}  # added to the X-API-Key requirement: the key is optional unless SDHRNET_ALIGN_REQUIRES_KEY


@router.post("/align", response_model=AlignResponse, openapi_extra=ALIGN_BODY, dependencies=[AlignKey],
             summary="Landmarks for the faces in one image",
             responses=problem_responses(401, 404, 413, 415, 422, 503))
async def align(request: Request, settings: Settings, models: Models, metrics: Metrics,
                dataset: str | None = Query(None, pattern=DATASET_PATTERN,
                                            description="which dataset's champion model to use (default 300w)"),
                max_faces: int | None = Query(None, ge=1, description="without boxes: keep at most this many "
                                              "detected faces, the most confident first (default and upper "
                                              "limit: the service's SDHRNET_MAX_FACES)"),
                min_face_size: float = Query(0, ge=0, description="without boxes: ignore detected faces whose "
                                             "box is smaller than this many pixels on its longer side; with "
                                             "small_faces, also how small a face the tiles look for"),
                small_faces: bool = Query(False, description="without boxes: besides one look at the whole photo, "
                                          "scan overlapping tiles of it for faces that look cannot see (below about "
                                          f"{SMALLEST_SHARE:.0%} of its longer side), down to min_face_size or as "
                                          f"far as {MAX_TILES} tiles reach; a few ms per tile (README: small "
                                          "faces). The answer's detection says how far the search went"),
                flip: bool = Query(False, description="flip test: the mirrored face goes through the network too "
                                   "and the heatmaps are averaged; about twice the landmark time for a lower "
                                   "error (README: flip test)"),
                recrop: bool | None = Query(None, description="a second pass: each face is cropped again at the "
                                            "box of its first-pass points and the two answers are averaged (a face "
                                            "tilted by 20 degrees or more is cropped turned upright and that answer "
                                            "stands); about twice the landmark time, for a lower error where the "
                                            "boxes are not tight around the face's points (README: second pass). "
                                            "Default: on for the faces the service detects; for boxes sent, on for "
                                            "tilted faces only. Unless false, a face the first pass is unsure of "
                                            "is cropped again turned by the face detector's tilt (README: tilted "
                                            "faces)")):
    dataset = dataset or settings.default_dataset
    keep = check_max_faces(max_faces, settings.max_faces)
    start = time.perf_counter()
    payload, raw_boxes, is_base64 = await read_align_body(request)
    photo, sent = await asyncio.to_thread(open_and_check, payload, raw_boxes, is_base64, settings)
    looked: dict[str, float] = {"decode": (time.perf_counter() - start) * 1e3}
    detected = None
    async with models.use(dataset) as model:
        # a large JPEG is decoded only as finely as its smallest face needs (landmarks.decode_scale); every pixel
        # position below is in that decoded photo until the answer maps them back
        if sent is None:
            image, factor, detected = await find_faces(request.app, photo, model.input_size, keep, min_face_size,
                                                       small_faces, settings.max_faces, looked)
            boxes = detected.boxes.astype(np.float32)
        else:
            image, factor, boxes = await asyncio.to_thread(decoded, photo_at_boxes, photo, sent, model.input_size,
                                                           looked)
        second_pass = default_recrop(recrop, detected is not None)
        rolls = detected.rolls if detected is not None else np.zeros(len(boxes))
        flip_pairs = flip_pairs_of(model) if flip else None
        eyes = eye_indices_of(model)
        if len(boxes):
            *aligned, timing = await align_faces(model, image, boxes, flip_pairs, second_pass, rolls,
                                                 tilt_checker(request.app),
                                                 detected.framed if detected is not None else None)
            aligned, detected = drop_non_faces(aligned, detected, keep)
        else:  # nothing detected: an empty answer, not an error
            aligned, timing = ([], [], [], [], []), {}
        described = model.describe()
    if detected is not None:
        metrics.not_faces.inc(detected.not_faces)
    metrics.faces.labels(dataset).inc(len(aligned[0]))
    faces = faces_in_photo(face_answers(*aligned, eyes, detected), factor)
    timing = {**looked, **timing, "total": (time.perf_counter() - start) * 1e3}
    return {"faces": faces, "model": described, "recrop": bool(second_pass),
            "detection": search_answer(detected, factor), "timing_ms": {k: round(v, 3) for k, v in timing.items()}}

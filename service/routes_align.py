"""POST /align: landmarks for the faces in one image."""
import asyncio
import time

import numpy as np
from fastapi import APIRouter, Query, Request
from starlette.datastructures import UploadFile

from .detection import check_max_faces, detect_faces
from .errors import InputError, first_error
from .images import check_boxes, decode_base64_image, decode_image, parse_boxes_field
from .schemas import DATASET_PATTERN, AlignRequest, AlignResponse, problem_responses
from .security import AlignKey

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


def media_type(request: Request) -> str:
    """The request's content type without parameters (boundary, charset), lower-cased."""
    return request.headers.get("content-type", "").split(";")[0].strip().lower()


async def read_align_body(request: Request) -> tuple[bytes | str, object, bool]:
    """-> (image bytes or base64 text, raw boxes, is_base64)."""
    content_type = media_type(request)
    if content_type == "application/json":
        try:
            body = AlignRequest.model_validate_json(await request.body())
        except ValueError as exc:
            raise InputError(f"the JSON body must be {{\"image\": \"<base64>\", \"boxes\": [[x1, y1, x2, y2]]}}: "
                             f"{first_error(exc)}") from None
        return body.image, body.boxes, True
    if content_type == "multipart/form-data":
        try:
            form = await request.form(max_files=1, max_fields=4)
        except Exception as exc:  # malformed multipart is the client's mistake
            if getattr(exc, "status_code", None) in (408, 413):  # body limits (service.limits)
                raise
            raise InputError(f"the multipart body could not be parsed ({exc}); send fields 'image' (file) and, "
                             "optionally, 'boxes' (JSON)") from None
        image = form.get("image")
        boxes = form.get("boxes")
        if not isinstance(image, UploadFile):
            raise InputError("multipart field 'image' is missing or not a file; attach the photo as 'image'")
        if isinstance(boxes, UploadFile):
            raise InputError("multipart field 'boxes' is a file; send it as a text field, e.g. "
                             "boxes=[[x1, y1, x2, y2]], or leave it out to have the faces detected")
        declared = (image.content_type or "").lower()
        if declared and not (declared.startswith("image/") or declared == "application/octet-stream"):
            raise InputError(f"the uploaded file is declared as {declared}; send an image (JPEG, PNG, BMP, "
                             "WebP or TIFF)", status=415)
        return await image.read(), None if boxes is None else parse_boxes_field(boxes), False
    raise InputError("send the request as application/json or multipart/form-data", status=415)


def flip_pairs_of(model) -> list:
    pairs = model.card.get("flip_pairs")
    if not pairs:
        raise InputError(f"model {model.name} v{model.version} has no flip pairs in its model card, so it cannot "
                         "run the flip test; drop flip=true")
    return [tuple(p) for p in pairs]


def _decode_and_check(payload, raw_boxes, is_base64: bool, settings):
    image = decode_base64_image(payload, settings.max_image_pixels) if is_base64 \
        else decode_image(payload, settings.max_image_pixels)
    # no boxes: the faces are detected after decoding
    boxes = None if raw_boxes is None else check_boxes(raw_boxes, image.shape, settings.max_faces)
    return image, boxes


async def align_faces(model, image: np.ndarray, boxes: np.ndarray,
                      flip_pairs=None) -> tuple[np.ndarray, np.ndarray, dict]:
    """Landmarks for `boxes` in `image` through the model's batcher; shared with /evaluate. With `flip_pairs`
    the flip test: the mirrored crops go through the network too and the heatmaps are averaged."""
    from landmarks.landmarker import flip_batch, heatmaps_to_landmarks, prepare_faces

    t0 = time.perf_counter()
    batch, transforms = await asyncio.to_thread(prepare_faces, image, boxes, model.input_size)
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
    timing = {"prepare": (t1 - t0) * 1e3, "inference": (t2 - t1) * 1e3, "decode_heatmaps": (t3 - t2) * 1e3}
    return np.asarray(landmarks), np.asarray(confidence), timing


@router.post("/align", response_model=AlignResponse, openapi_extra=ALIGN_BODY, dependencies=[AlignKey],
             summary="Landmarks for the faces in one image",
             responses=problem_responses(401, 404, 413, 415, 422, 503))
async def align(request: Request,
                dataset: str | None = Query(None, pattern=DATASET_PATTERN,
                                            description="which dataset's champion model to use (default 300w)"),
                max_faces: int | None = Query(None, ge=1, description="without boxes: keep at most this many "
                                              "detected faces, the most confident first (default and upper "
                                              "limit: the service's SDHRNET_MAX_FACES)"),
                min_face_size: float = Query(0, ge=0, description="without boxes: ignore detected faces whose "
                                             "box is smaller than this many pixels on its longer side"),
                flip: bool = Query(False, description="flip test: the mirrored face goes through the network too "
                                   "and the heatmaps are averaged; about twice the landmark time for a lower "
                                   "error (README: flip test)")):
    settings = request.app.state.service_settings
    dataset = dataset or settings.default_dataset
    keep = check_max_faces(max_faces, settings.max_faces)
    start = time.perf_counter()
    payload, raw_boxes, is_base64 = await read_align_body(request)
    image, boxes = await asyncio.to_thread(_decode_and_check, payload, raw_boxes, is_base64, settings)
    decoded = time.perf_counter()
    detected, detect_timing = None, {}
    if boxes is None:
        detected, detect_ms = await detect_faces(request.app, image, keep, min_face_size)
        boxes = detected.boxes.astype(np.float32)
        detect_timing = {"detect": detect_ms}
    async with request.app.state.models.use(dataset) as model:
        flip_pairs = flip_pairs_of(model) if flip else None
        if len(boxes):
            landmarks, confidence, timing = await align_faces(model, image, boxes, flip_pairs)
        else:  # nothing detected: an empty answer, not an error
            landmarks, confidence, timing = [], [], {}
        described = model.describe()
    request.app.state.metrics.faces.labels(dataset).inc(len(boxes))
    faces = [{"box": [float(v) for v in box], "landmarks": lm.astype(float).tolist(),
              "confidence": conf.astype(float).tolist()}
             for box, lm, conf in zip(boxes, landmarks, confidence)]
    if detected is not None:
        for face, score, det_box in zip(faces, detected.scores, detected.detector_boxes):
            face.update(detection_score=float(score), detection_box=[float(v) for v in det_box])
    timing = {"decode": (decoded - start) * 1e3, **detect_timing, **timing,
              "total": (time.perf_counter() - start) * 1e3}
    return {"faces": faces, "model": described, "timing_ms": {k: round(v, 3) for k, v in timing.items()}}

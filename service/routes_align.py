"""POST /align: landmarks for the faces in one image."""
import asyncio
import time

import numpy as np
from fastapi import APIRouter, Query, Request
from starlette.datastructures import UploadFile

from .errors import InputError
from .images import check_boxes, decode_base64_image, decode_image, parse_boxes_field
from .schemas import DATASET_PATTERN, AlignRequest, AlignResponse, problem_responses
from .security import AlignKey

router = APIRouter(tags=["align"])

MULTIPART_SCHEMA = {
    "type": "object",
    "required": ["image", "boxes"],
    "properties": {
        "image": {"type": "string", "format": "binary", "description": "the image file"},
        "boxes": {"type": "string", "description": "JSON list of [x1, y1, x2, y2] boxes in image pixels",
                  "example": "[[40, 40, 200, 220]]"},
    },
}
ALIGN_BODY = {"requestBody": {"required": True, "content": {
    "application/json": {"schema": AlignRequest.model_json_schema(ref_template="#/components/schemas/{model}")},
    "multipart/form-data": {"schema": MULTIPART_SCHEMA},
}}}


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
            if getattr(exc, "status_code", None) == 413:
                raise
            raise InputError(f"the multipart body could not be parsed ({exc}); send fields 'image' (file) and "
                             "'boxes' (JSON)") from None
        image = form.get("image")
        boxes = form.get("boxes")
        if not isinstance(image, UploadFile):
            raise InputError("multipart field 'image' is missing or not a file; attach the photo as 'image'")
        if boxes is None or isinstance(boxes, UploadFile):
            raise InputError("multipart field 'boxes' is missing; send e.g. boxes=[[x1, y1, x2, y2]]")
        declared = (image.content_type or "").lower()
        if declared and not (declared.startswith("image/") or declared == "application/octet-stream"):
            raise InputError(f"the uploaded file is declared as {declared}; send an image (JPEG, PNG, BMP, "
                             "WebP or TIFF)", status=415)
        return await image.read(), parse_boxes_field(boxes), False
    raise InputError("send the request as application/json or multipart/form-data", status=415)


def first_error(exc) -> str:
    errors = getattr(exc, "errors", None)
    if callable(errors):
        try:
            e = errors()[0]
            return f"{'.'.join(map(str, e.get('loc', ())))}: {e.get('msg')}"
        except Exception:
            pass
    return str(exc).splitlines()[0]


def _decode_and_check(payload, raw_boxes, is_base64: bool, settings):
    image = decode_base64_image(payload, settings.max_image_pixels) if is_base64 \
        else decode_image(payload, settings.max_image_pixels)
    boxes = check_boxes(raw_boxes, image.shape, settings.max_faces)
    return image, boxes


async def align_faces(model, image: np.ndarray, boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray, dict]:
    """Landmarks for `boxes` in `image` through the model's batcher; shared with /evaluate."""
    from trainer.landmarker import heatmaps_to_landmarks, prepare_faces

    t0 = time.perf_counter()
    batch, transforms = await asyncio.to_thread(prepare_faces, image, boxes, model.input_size)
    t1 = time.perf_counter()
    heatmaps = await model.batcher.submit(np.ascontiguousarray(batch, dtype=np.float32))
    t2 = time.perf_counter()
    landmarks, confidence = await asyncio.to_thread(heatmaps_to_landmarks, heatmaps, transforms)
    t3 = time.perf_counter()
    timing = {"prepare": (t1 - t0) * 1e3, "inference": (t2 - t1) * 1e3, "decode_heatmaps": (t3 - t2) * 1e3}
    return np.asarray(landmarks), np.asarray(confidence), timing


@router.post("/align", response_model=AlignResponse, openapi_extra=ALIGN_BODY, dependencies=[AlignKey],
             summary="Landmarks for the faces in one image",
             responses=problem_responses(401, 413, 415, 422, 503))
async def align(request: Request,
                dataset: str | None = Query(None, pattern=DATASET_PATTERN,
                                            description="which dataset's champion model to use (default 300w)")):
    settings = request.app.state.service_settings
    dataset = dataset or settings.default_dataset
    start = time.perf_counter()
    payload, raw_boxes, is_base64 = await read_align_body(request)
    image, boxes = await asyncio.to_thread(_decode_and_check, payload, raw_boxes, is_base64, settings)
    decoded = time.perf_counter()
    async with request.app.state.models.use(dataset) as model:
        landmarks, confidence, timing = await align_faces(model, image, boxes)
        described = model.describe()
    request.app.state.metrics.faces.labels(dataset).inc(len(boxes))
    faces = [{"box": [float(v) for v in box], "landmarks": lm.astype(float).tolist(),
              "confidence": conf.astype(float).tolist()}
             for box, lm, conf in zip(boxes, landmarks, confidence)]
    timing = {"decode": (decoded - start) * 1e3, **timing, "total": (time.perf_counter() - start) * 1e3}
    return {"faces": faces, "model": described, "timing_ms": {k: round(v, 3) for k, v in timing.items()}}

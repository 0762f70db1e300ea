"""Reading request bodies: the /align body (JSON with base64, or multipart), decoded and checked."""
from fastapi import Request
from starlette.datastructures import UploadFile

from .errors import InputError, first_error
from .images import check_boxes, decode_base64_image, decode_image, parse_boxes_field
from .schemas import AlignRequest


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


def decode_and_check(payload, raw_boxes, is_base64: bool, settings):
    image = decode_base64_image(payload, settings.max_image_pixels) if is_base64 \
        else decode_image(payload, settings.max_image_pixels)
    # no boxes: the faces are detected after decoding
    boxes = None if raw_boxes is None else check_boxes(raw_boxes, image.shape, settings.max_faces)
    return image, boxes

"""Reading request bodies: the /align body (JSON with base64, or multipart), its photo and boxes checked; the /evaluate
body (JSON items, or a multipart archive with its layout and split)."""
from dataclasses import dataclass
from typing import BinaryIO

from fastapi import Request
from starlette.datastructures import FormData, UploadFile

from landmarks.decode_scale import Photo

from .errors import InputError, first_error
from .images import base64_bytes, check_boxes, open_photo, parse_boxes_field
from .schemas import AlignRequest, EvaluateRequest


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
        # two files: a 'boxes' sent as a file gets its own message below rather than "too many files"
        form = await _read_form(request, max_fields=4, max_files=2,
                                hint="; send fields 'image' (file) and, optionally, 'boxes' (JSON)")
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


@dataclass(frozen=True)
class ArchiveUpload:
    """A multipart /evaluate body: the set's archive (an open file), its dataset layout, the split to score
    (None: the layout's default)."""
    file: BinaryIO
    layout: str
    split: str | None


async def read_evaluate_body(request: Request, default_layout: str) -> EvaluateRequest | ArchiveUpload:
    """JSON items (application/json) or an archive (multipart/form-data field 'archive', optional 'layout',
    default `default_layout`, and 'split')."""
    content_type = media_type(request)
    if content_type == "application/json":
        try:
            return EvaluateRequest.model_validate_json(await request.body())
        except ValueError as exc:
            raise InputError(f'the JSON body must be {{"items": [{{"image": "<base64>", "box": [x1, y1, x2, y2], '
                             f'"landmarks": [[x, y], ...]}}]}}: {first_error(exc)}') from None
    if content_type != "multipart/form-data":
        raise InputError("send JSON items (application/json) or an archive (multipart/form-data field 'archive')",
                         status=415)
    form = await _read_form(request, max_fields=8)
    archive = form.get("archive")
    if not isinstance(archive, UploadFile):
        raise InputError("multipart field 'archive' is missing or not a file; attach a zip or tar of the set")
    split = form.get("split")
    return ArchiveUpload(archive.file, str(form.get("layout") or default_layout),
                         str(split) if split and not isinstance(split, UploadFile) else None)


async def _read_form(request: Request, max_fields: int, hint: str = "", max_files: int = 1) -> FormData:
    """The multipart form; a malformed one is the client's mistake (422 + `hint`)."""
    try:
        return await request.form(max_files=max_files, max_fields=max_fields)
    except Exception as exc:
        if getattr(exc, "status_code", None) in (408, 413):  # body limits (service.limits)
            raise
        raise InputError(f"the multipart body could not be parsed ({exc}){hint}") from None


def open_and_check(payload, raw_boxes, is_base64: bool, settings) -> tuple[Photo, list | None]:
    """-> (the photo, its header checked but not yet decoded; the boxes sent, their number and form checked (their
    place in the photo once it is decoded: landmarks.answers.photo_at_boxes), or None: the faces are to be
    detected)."""
    photo = open_photo(base64_bytes(payload) if is_base64 else payload, settings.max_image_pixels)
    if raw_boxes is not None:
        check_boxes(raw_boxes, None, settings.max_faces)
    return photo, raw_boxes

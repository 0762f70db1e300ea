"""Turning request bytes into an RGB image and checked face boxes (user mistakes become 415/422)."""
import base64
import binascii
import io
import warnings

import numpy as np
from PIL import Image, UnidentifiedImageError
from pydantic import TypeAdapter, ValidationError

from landmarks.answers import BoxError, box_array, checked_boxes
from landmarks.decode_scale import Header, Photo, UndecodableError, read_header

from .errors import InputError, first_error
from .schemas import Boxes

# the service applies its own pixel limit (SDHRNET_MAX_IMAGE_PIXELS) from the header; Pillow's warning adds noise
warnings.simplefilter("ignore", Image.DecompressionBombWarning)
PILLOW_FORMATS = ("JPEG", "PNG", "BMP", "WEBP", "TIFF")
BOXES = TypeAdapter(Boxes)

# magic numbers of the formats OpenCV decodes here; anything else is an unsupported type (415)
SIGNATURES = {
    b"\xff\xd8\xff": "jpeg", b"\x89PNG\r\n\x1a\n": "png", b"BM": "bmp",
    b"II*\x00": "tiff", b"MM\x00*": "tiff",
}
SUPPORTED = "JPEG, PNG, BMP, WebP or TIFF"


def sniff_format(data: bytes) -> str | None:
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    for magic, name in SIGNATURES.items():
        if data.startswith(magic):
            return name
    return None


def open_photo(data: bytes, max_pixels: int) -> Photo:
    """The upload, its format and size checked from the header (415, 413, 422), not yet decoded."""
    if not data:
        raise InputError("the image is empty; send the bytes of a " + SUPPORTED + " file")
    if sniff_format(data) is None:
        raise InputError(f"the image is not in a supported format; send {SUPPORTED}", status=415)
    return Photo.of(data, check_declared_size(io.BytesIO(data), max_pixels))


def decoded(step, *args):
    """`step(*args)`, a step that decodes an upload (a Photo's decode, or one that calls it and checks the boxes sent
    against the decoded size); data that cannot be decoded and boxes that do not fit are the client's (422)."""
    try:
        return step(*args)
    except UndecodableError:
        raise InputError(undecodable("the image")) from None
    except BoxError as exc:
        raise InputError(str(exc)) from None


def decode_image(data: bytes, max_pixels: int) -> np.ndarray:
    return decoded(open_photo(data, max_pixels).decode)[0]


def undecodable(what: str) -> str:
    return f"{what} could not be decoded (truncated or corrupt file); send a complete {SUPPORTED} file"


def check_declared_size(source, max_pixels: int, what: str = "the image") -> Header:
    """Refuse an image by the size its header declares, before any decoder allocates the pixels (a few KB
    of PNG can declare 20000x20000). `source`: a binary file object or a path; only the header is read."""
    try:
        header = read_header(source, PILLOW_FORMATS)
    except Image.DecompressionBombError:  # Pillow's own, larger limit: too large either way
        raise InputError(f"{what} declares more than the {max_pixels} pixels allowed; downscale it (and the "
                         "boxes) first", status=413) from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
        raise InputError(undecodable(what)) from None
    if header.width * header.height > max_pixels:
        raise InputError(f"{what} has {header.width}x{header.height} pixels, more than the {max_pixels} allowed; "
                         "downscale it (and the boxes) first", status=413)
    return header


def base64_bytes(text: str) -> bytes:
    if "," in text[:100] and text.startswith("data:"):
        text = text.split(",", 1)[1]  # accept data URLs as browsers produce them
    try:
        # line breaks and spaces are how `base64` and MIME wrap long text (every 76 characters); anything else that
        # is not base64 is still refused
        return base64.b64decode("".join(text.split()), validate=True)
    except (binascii.Error, ValueError):
        raise InputError("'image' is not valid base64; send the file bytes base64-encoded") from None


def decode_base64_image(text: str, max_pixels: int) -> np.ndarray:
    return decode_image(base64_bytes(text), max_pixels)


def parse_boxes_field(text: str) -> list:
    """The multipart 'boxes' field, read by the same parser and type as the JSON body's 'boxes'."""
    try:
        return BOXES.validate_json(text)
    except ValidationError as exc:
        raise InputError("the boxes field must be JSON like [[x1, y1, x2, y2]] with numbers in image pixels: "
                         f"{first_error(exc, 'boxes')}") from None


def check_boxes(raw, image_shape, max_faces: int) -> np.ndarray:
    """-> (N, 4): at most `max_faces` boxes, each meeting the rules of landmarks.answers.checked_boxes in an image of
    `image_shape` (as decoded); `image_shape` None: before decoding, only their number and form (box_array)."""
    if isinstance(raw, list) and len(raw) > max_faces:
        raise InputError(f"{len(raw)} faces in one request, at most {max_faces} are allowed; split the request (or "
                         "raise SDHRNET_MAX_FACES on the server)")
    try:
        return box_array(raw) if image_shape is None else checked_boxes(raw, image_shape)
    except BoxError as exc:
        raise InputError(str(exc)) from None

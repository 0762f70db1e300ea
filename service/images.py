"""Turning request bytes into an RGB image and checked face boxes (user mistakes become 415/422)."""
import base64
import binascii
import io
import math
import warnings

import cv2
import numpy as np
from PIL import Image, UnidentifiedImageError
from pydantic import TypeAdapter, ValidationError

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


def decode_image(data: bytes, max_pixels: int) -> np.ndarray:
    if not data:
        raise InputError("the image is empty; send the bytes of a " + SUPPORTED + " file")
    if sniff_format(data) is None:
        raise InputError(f"the image is not in a supported format; send {SUPPORTED}", status=415)
    check_declared_size(io.BytesIO(data), max_pixels)
    try:
        bgr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    except cv2.error:
        bgr = None
    if bgr is None or bgr.size == 0:
        raise InputError(_undecodable("the image"))
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def _undecodable(what: str) -> str:
    return f"{what} could not be decoded (truncated or corrupt file); send a complete {SUPPORTED} file"


def check_declared_size(source, max_pixels: int, what: str = "the image") -> None:
    """Refuse an image by the size its header declares, before any decoder allocates the pixels (a few KB
    of PNG can declare 20000x20000). `source`: a binary file object or a path; only the header is read."""
    try:
        with Image.open(source, formats=PILLOW_FORMATS) as header:
            width, height = header.size
    except Image.DecompressionBombError:  # Pillow's own, larger limit: too large either way
        raise InputError(f"{what} declares more than the {max_pixels} pixels allowed; downscale it (and the "
                         "boxes) first", status=413) from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
        raise InputError(_undecodable(what)) from None
    if width * height > max_pixels:
        raise InputError(f"{what} has {width}x{height} pixels, more than the {max_pixels} allowed; downscale it "
                         "(and the boxes) first", status=413)


def decode_base64_image(text: str, max_pixels: int) -> np.ndarray:
    if "," in text[:100] and text.startswith("data:"):
        text = text.split(",", 1)[1]  # accept data URLs as browsers produce them
    try:
        data = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise InputError("'image' is not valid base64; send the file bytes base64-encoded") from None
    return decode_image(data, max_pixels)


def parse_boxes_field(text: str) -> list:
    """The multipart 'boxes' field, read by the same parser and type as the JSON body's 'boxes'."""
    try:
        return BOXES.validate_json(text)
    except ValidationError as exc:
        raise InputError("the boxes field must be JSON like [[x1, y1, x2, y2]] with numbers in image pixels: "
                         f"{first_error(exc)}") from None


def check_boxes(raw, image_shape, max_faces: int) -> np.ndarray:
    """-> float32 (N, 4)."""
    if not isinstance(raw, list) or not all(isinstance(b, list) and len(b) == 4 and all(map(_is_number, b))
                                            for b in raw):
        raise InputError("boxes must be a list of [x1, y1, x2, y2] lists of numbers in image pixels")
    if not raw:
        raise InputError("no boxes given; send at least one face box [x1, y1, x2, y2]")
    if len(raw) > max_faces:
        raise InputError(f"{len(raw)} faces in one request, at most {max_faces} are allowed; split the request")
    h, w = image_shape[:2]
    boxes = np.asarray(raw, dtype=np.float64)
    for i, (x1, y1, x2, y2) in enumerate(boxes):
        where = f"box {i} {[float(v) for v in (x1, y1, x2, y2)]}"
        if not all(math.isfinite(v) for v in (x1, y1, x2, y2)):
            raise InputError(f"{where} contains NaN or infinity; send finite pixel coordinates")
        if x2 - x1 < 2 or y2 - y1 < 2:
            raise InputError(f"{where} is degenerate: x2 must exceed x1 and y2 exceed y1 by at least 2 pixels")
        ix = min(x2, w) - max(x1, 0)
        iy = min(y2, h) - max(y1, 0)
        inside = max(ix, 0) * max(iy, 0) / ((x2 - x1) * (y2 - y1))
        if inside < 0.5:
            raise InputError(f"{where} lies mostly outside the {w}x{h} image (at least half of the box must "
                             "be inside); boxes are [x1, y1, x2, y2] in pixels of this image")
    return boxes.astype(np.float32)


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)

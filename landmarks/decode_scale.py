"""Decoding a large JPEG at 1/2, 1/4 or 1/8 of its size when every face asked about stays large enough for the
landmark network. libjpeg scales in the DCT, so a reduced decode costs a fraction of a full one (a smooth
12-megapixel photo: 45 ms in full, 10 ms at 1/8 on a 2-core EPYC; a grainy one 151 and 65 ms, since every
coefficient is still entropy-decoded: README, "Large photos") and holds 1/f^2 of the pixels, while the crop the
network sees is the same: a face still spans twice the network's input after the reduction.

Coordinates: pixel i of a photo decoded at 1/f covers pixels f*i .. f*i + f - 1 of the full one, so its centre is
f*i + (f - 1) / 2 there (geometry's convention: integer coordinates are pixel centres). That holds in every EXIF
orientation only when f divides both sides (the scaled blocks then tile the photo exactly), so other photos are
decoded in full."""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import NamedTuple

import cv2
import numpy as np
from PIL import Image

from landmarks.face_detector import INPUT_SIZE as DETECTOR_INPUT
from landmarks.geometry import CROP_EXPAND

FACTORS = (8, 4, 2)
FLAGS = {1: cv2.IMREAD_COLOR, 2: cv2.IMREAD_REDUCED_COLOR_2, 4: cv2.IMREAD_REDUCED_COLOR_4,
         8: cv2.IMREAD_REDUCED_COLOR_8}
# the face search's first look is at a photo decoded with its longer side at least this long: the detector shrinks
# it onto its 128 px input anyway, and the faces it can see there (15% of that side and more) are measured before
# the photo is decoded as finely as the smallest of them needs
SEARCH_PX = 4 * DETECTOR_INPUT
EXIF_ORIENTATION = 0x0112
TURNED_BY_90 = (5, 6, 7, 8)  # EXIF orientations whose upright photo has width and height swapped
JPEG_FORMATS = ("JPEG", "MPO")  # Pillow names a phone's multi-picture JPEG MPO
# how many times the network's input a face must span after the reduction: the crop is then still shrunk onto the
# input, as from the full photo
OVERSAMPLING = 2.0


def smallest_face_px(input_size: int) -> float:
    """The side (px) of the smallest face box a reduced decode may leave: its crop (CROP_EXPAND times the box) spans
    OVERSAMPLING times the network's input."""
    return OVERSAMPLING * input_size / CROP_EXPAND


def decode_factor(face_px: float, input_size: int, width: int, height: int, jpeg: bool) -> int:
    """The coarsest reduction (8, 4, 2, else 1) at which a face box of `face_px` (its longer side, in pixels of the
    full photo) keeps smallest_face_px, for a photo of `width` x `height` that is a JPEG."""
    if not jpeg or not np.isfinite(face_px):
        return 1
    need = smallest_face_px(input_size)
    for f in FACTORS:
        if face_px / f >= need and width % f == 0 and height % f == 0:
            return f
    return 1


def to_decoded(points, factor: int) -> np.ndarray:
    """Coordinates (x, y pairs, or [x1, y1, x2, y2] boxes) in the full photo -> in the photo decoded at 1/factor."""
    return (np.asarray(points, dtype=np.float64) - (factor - 1) / 2) / factor


def to_photo(points, factor: int) -> np.ndarray:
    """The inverse of to_decoded."""
    return np.asarray(points, dtype=np.float64) * factor + (factor - 1) / 2


class UndecodableError(ValueError):
    """Data OpenCV cannot decode (truncated or corrupt)."""


class Header(NamedTuple):
    width: int  # as stored; Photo has them upright
    height: int
    format: str | None  # Pillow's name: "JPEG", "PNG", ...
    orientation: int  # EXIF, 1 when absent


def read_header(source, formats=None) -> Header:
    """What an image file's header declares, without decoding its pixels (`source`: a path or a binary file object).
    Pillow's errors pass through (UnidentifiedImageError, OSError, DecompressionBombError, ...)."""
    with Image.open(source, formats=formats) as header:
        try:
            orientation = int(header.getexif().get(EXIF_ORIENTATION, 1))
        except Exception:  # a broken EXIF block: OpenCV will not turn the photo either
            orientation = 1
        return Header(*header.size, header.format, orientation)


@dataclass(frozen=True)
class Photo:
    """An encoded image and its size upright (as OpenCV decodes it, turned by its EXIF orientation)."""
    data: bytes
    width: int
    height: int
    jpeg: bool

    @classmethod
    def of(cls, data: bytes, header: Header) -> "Photo":
        """The size a JPEG's header declares, turned as its EXIF orientation says: what OpenCV decodes it to, most
        often (Photo.decode checks, and boxes are checked against the decoded photo)."""
        turned = header.format in JPEG_FORMATS and header.orientation in TURNED_BY_90
        w, h = (header.height, header.width) if turned else (header.width, header.height)
        return cls(data, w, h, header.format in JPEG_FORMATS)

    def factor_for(self, face_px: float, input_size: int) -> int:
        return decode_factor(face_px, input_size, self.width, self.height, self.jpeg)

    def search_factor(self, small_faces: bool) -> int:
        """The reduction for the face search's first look; small_faces' tiles look for faces of a few dozen pixels,
        so they search the full photo."""
        if small_faces or not self.jpeg:
            return 1
        return next((f for f in FACTORS if max(self.width, self.height) / f >= SEARCH_PX
                     and self.width % f == 0 and self.height % f == 0), 1)

    def decode(self, factor: int = 1, timing: dict | None = None) -> tuple[np.ndarray, int]:
        """-> (RGB uint8, the reduction it has); adds its milliseconds to timing["decode"]. A decode whose size does
        not match the header's (an EXIF orientation OpenCV read otherwise) is done again in full. UndecodableError
        where OpenCV cannot decode the data (a truncated file among them)."""
        start = time.perf_counter()
        try:
            bgr = cv2.imdecode(np.frombuffer(self.data, np.uint8), FLAGS[factor])
        except cv2.error:
            bgr = None
        if bgr is None or bgr.size == 0:
            raise UndecodableError("the image could not be decoded")
        mismatch = factor > 1 and (bgr.shape[0] * factor, bgr.shape[1] * factor) != (self.height, self.width)
        rgb = None if mismatch else cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        if timing is not None:
            timing["decode"] = timing.get("decode", 0.0) + (time.perf_counter() - start) * 1e3
        return self.decode(1, timing) if mismatch else (rgb, factor)


def box_sides(boxes) -> np.ndarray:
    """The longer side of each [x1, y1, x2, y2] box."""
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    return np.maximum(b[:, 2] - b[:, 0], b[:, 3] - b[:, 1])

"""Face crop geometry shared by training, evaluation and serving (numpy + OpenCV only, no torch).

Pixel convention: integer coordinates are pixel centres (0-based), as OpenCV's warpAffine uses them.
A crop of side `200 * scale` source pixels centred on `center` is mapped onto an S x S output so that
the source centre lands on the output centre (S - 1) / 2 and the crop's outer pixel edges land on the
output's outer pixel edges. Landmarks go through the very same 2x3 matrix as the image, so the inverse
(`invert_affine`) brings predictions back exactly, with no integer rounding anywhere.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

PIXEL_STD = 200.0  # HRNet's unit: scale = side / 200
CROP_EXPAND = 1.25  # crop 1.25x the landmark box
IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)


class InvalidBoxError(ValueError):
    """A face box that cannot define a crop."""


def validate_box(box) -> np.ndarray:
    b = np.asarray(box, dtype=np.float64)
    if b.shape != (4,):
        raise InvalidBoxError(f"a face box must be 4 numbers [x1, y1, x2, y2], got shape {b.shape}")
    if not np.all(np.isfinite(b)):
        raise InvalidBoxError(f"face box {b.tolist()} contains NaN or infinity")
    if b[2] <= b[0] or b[3] <= b[1]:
        raise InvalidBoxError(f"face box {b.tolist()} is empty or inverted: need x2 > x1 and y2 > y1")
    return b


def box_to_center_scale(box, expand: float = CROP_EXPAND) -> tuple[np.ndarray, float]:
    """[x1, y1, x2, y2] -> (centre (2,), scale) with crop side = 200 * scale = expand * max(w, h)."""
    b = validate_box(box)
    center = np.array([(b[0] + b[2]) / 2.0, (b[1] + b[3]) / 2.0])
    scale = expand * max(b[2] - b[0], b[3] - b[1]) / PIXEL_STD
    return center, float(scale)


def landmark_box(landmarks) -> np.ndarray:
    pts = np.asarray(landmarks, dtype=np.float64)
    return np.array([pts[:, 0].min(), pts[:, 1].min(), pts[:, 0].max(), pts[:, 1].max()])


def scale_box(box, factor: float) -> np.ndarray:
    """The box `factor` times as large about its centre."""
    b = validate_box(box)
    centre, half = (b[:2] + b[2:]) / 2, (b[2:] - b[:2]) / 2 * factor
    return np.concatenate([centre - half, centre + half])


def crop_matrix(center, scale: float, output_size: int, rotation: float = 0.0, flip: bool = False) -> np.ndarray:
    """2x3 affine source -> crop. `rotation` in degrees, positive turns the face counter-clockwise on
    screen; `flip` mirrors the output horizontally (landmark indices must then be permuted by the caller)."""
    if not (scale > 0 and math.isfinite(scale)):
        raise InvalidBoxError(f"crop scale must be a positive number, got {scale}")
    cx, cy = float(center[0]), float(center[1])
    k = output_size / (PIXEL_STD * scale)
    theta = math.radians(rotation)
    c, s = math.cos(theta) * k, math.sin(theta) * k
    # image y points down, so this is a counter-clockwise turn as seen on screen
    a = np.array([[c, s], [-s, c]])
    half = (output_size - 1) / 2.0
    t = np.array([half, half]) - a @ np.array([cx, cy])
    m = np.hstack([a, t[:, None]])
    if flip:
        m[0] = -m[0]
        m[0, 2] += output_size - 1
    return m


def invert_affine(m: np.ndarray) -> np.ndarray:
    m = np.asarray(m, dtype=np.float64)
    a_inv = np.linalg.inv(m[:, :2])
    return np.hstack([a_inv, (-a_inv @ m[:, 2])[:, None]])


def compose_affine(second: np.ndarray, first: np.ndarray) -> np.ndarray:
    """Matrix of applying `first`, then `second`."""
    a = second[:, :2] @ first[:, :2]
    t = second[:, :2] @ first[:, 2] + second[:, 2]
    return np.hstack([a, t[:, None]])


def transform_points(points, m: np.ndarray) -> np.ndarray:
    p = np.asarray(points, dtype=np.float64)
    return p @ m[:, :2].T + m[:, 2]


# Bilinear sampling reads the 2x2 source pixels around each output pixel: up to a reduction of 2 every source pixel
# still counts, beyond it pixels are skipped and fine texture and sensor noise alias into the crop. The training
# crops here never go beyond 2 (the shared 300W photos were shrunk until each face is at most 200 px across, cropped
# 250 px onto 128), so a larger face is first area-averaged down to that density: the network sees what it learnt on.
MAX_BILINEAR_REDUCTION = 2.0


def warp(image: np.ndarray, m: np.ndarray, output_size: int) -> np.ndarray:
    """Apply a source -> crop matrix to an image; outside the photo is black, as in the cached crops. A crop that
    reduces the photo by more than MAX_BILINEAR_REDUCTION is anti-aliased first (area averaging)."""
    reduction = 1.0 / math.sqrt(abs(float(np.linalg.det(np.asarray(m, dtype=np.float64)[:, :2]))))
    if reduction > MAX_BILINEAR_REDUCTION:
        halvings = math.ceil(math.log2(reduction / MAX_BILINEAR_REDUCTION))
        image, m = _area_reduced(image, m, int(output_size), halvings)
    return cv2.warpAffine(image, m, (int(output_size), int(output_size)), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=0)


def _area_reduced(image: np.ndarray, m: np.ndarray, output_size: int, halvings: int
                  ) -> tuple[np.ndarray, np.ndarray]:
    """The part of `image` that the crop reads, halved `halvings` times by area averaging, with the
    matrix from it to the same crop. Only that part is resized, so a face in a 50-megapixel photo costs what its box
    costs; it is widened to whole blocks so that every halving is exact."""
    factor = 2 ** halvings
    last = output_size - 1
    corners = transform_points(np.array([[0, 0], [last, 0], [0, last], [last, last]], dtype=np.float64),
                               invert_affine(m))
    height, width = image.shape[:2]
    # blocks on a grid fixed to the photo, not to the crop: two crops of one photo see the same averages, so a box
    # moved by a pixel moves the answer by a fraction of one, as without the averaging
    x0, y0 = np.maximum(np.floor(corners.min(axis=0)).astype(int) - 2, 0) // factor * factor
    x1, y1 = np.minimum(np.ceil(corners.max(axis=0)).astype(int) + 2, [width - 1, height - 1])
    if x1 < x0 or y1 < y0:  # the crop lies outside the photo: it is black either way
        return image, m
    # whole blocks: widen the part within the photo, then past its edge with black, as outside the photo is
    x1, y1 = x0 + -(-(x1 - x0 + 1) // factor) * factor - 1, y0 + -(-(y1 - y0 + 1) // factor) * factor - 1
    part = image[y0:y1 + 1, x0:x1 + 1]
    part = cv2.copyMakeBorder(part, 0, y1 + 1 - y0 - part.shape[0], 0, x1 + 1 - x0 - part.shape[1],
                              cv2.BORDER_CONSTANT, value=0)
    small = area_resized(part, (part.shape[1] // factor, part.shape[0] // factor))
    # pixel centres at integers: the small image's pixel u averages the part's pixels factor * u to factor * (u + 1) - 1
    onto_part = np.array([[factor, 0.0, 0.5 * factor - 0.5 + x0], [0.0, factor, 0.5 * factor - 0.5 + y0]])
    return small, compose_affine(m, onto_part)


def area_resized(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """`image` resized down to `size` (width, height) by area averaging. OpenCV halves an image about four times
    faster than it averages 4x4 blocks, and several times faster than fractional blocks (a 12-megapixel photo onto
    128 px: 6 ms against 38, bench/large_faces.py), so the image is halved while it is at least twice the size; two
    halvings average the same 4x4 blocks, so the result is the same up to rounding."""
    while image.shape[1] >= 2 * size[0] and image.shape[0] >= 2 * size[1] and min(image.shape[:2]) >= 2:
        image = cv2.resize(image, (image.shape[1] // 2, image.shape[0] // 2), interpolation=cv2.INTER_AREA)
    if (image.shape[1], image.shape[0]) == tuple(size):
        return image
    return cv2.resize(image, tuple(size), interpolation=cv2.INTER_AREA)


def crop_face(image: np.ndarray, box, output_size: int, roll: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Evaluation/serving crop of one face: (S x S x 3 uint8, source -> crop matrix). `roll` (degrees, as face_roll
    measures it) turns the crop with the face about the box centre, so a tilted face reaches the network upright;
    the box is then the face's box in its own upright frame."""
    center, scale = box_to_center_scale(box)
    m = crop_matrix(center, scale, output_size, rotation=roll)
    return warp(image, m, output_size), m


def face_roll(points, eye_indices) -> float:
    """A face's in-plane rotation in degrees, in (-180, 180]: the angle of the line through its two outer eye corners
    `eye_indices` in image coordinates (y down, so positive is clockwise on screen), 0 for an upright face. The line
    alone cannot tell a face from one turned upside down; the side of it that the points' centroid lies on (nose,
    mouth and jaw are below the eyes) does, so the sign does not depend on which eye a layout lists first."""
    pts = np.asarray(points, dtype=np.float64)
    a, b = pts[eye_indices[0]], pts[eye_indices[1]]
    angle = math.atan2(b[1] - a[1], b[0] - a[0])
    down = np.array([-math.sin(angle), math.cos(angle)])  # the line's normal that points down when angle is 0
    if down @ (pts.mean(axis=0) - (a + b) / 2) < 0:
        angle += math.pi
    degrees = math.degrees(math.atan2(math.sin(angle), math.cos(angle)))
    return degrees + 360.0 if degrees <= -180.0 else degrees


def wrap_degrees(a) -> float | np.ndarray:
    """Angles in degrees brought into [-180, 180)."""
    return (np.asarray(a, dtype=np.float64) + 180.0) % 360.0 - 180.0


def angle_difference(a, b) -> float | np.ndarray:
    """How far apart two angles in degrees are, in [0, 180]: 170 and -170 are 20 apart."""
    return np.abs(wrap_degrees(np.asarray(a, dtype=np.float64) - b))


def turn_points(points, degrees: float, about=(0.0, 0.0)) -> np.ndarray:
    """Points (N, 2) turned by `degrees` about `about` in image coordinates (clockwise on screen for positive
    angles, as face_roll counts them)."""
    t = math.radians(degrees)
    rot = np.array([[math.cos(t), -math.sin(t)], [math.sin(t), math.cos(t)]])
    centre = np.asarray(about, dtype=np.float64)
    return (np.asarray(points, dtype=np.float64) - centre) @ rot.T + centre


def upright_box(points, roll: float) -> np.ndarray:
    """The box of `points` in a face frame turned by `roll`: the box that encloses them once they are turned upright
    about their centroid, placed at the matching centre in the image ([x1, y1, x2, y2] in image px), so that
    crop_face(image, box, S, roll) frames them as landmark_box frames an upright face."""
    pts = np.asarray(points, dtype=np.float64)
    if roll == 0:
        return landmark_box(pts)
    centroid = pts.mean(axis=0)
    box = landmark_box(turn_points(pts, -roll, centroid))
    half = (box[2:] - box[:2]) / 2
    centre = turn_points(((box[:2] + box[2:]) / 2)[None], roll, centroid)[0]
    return np.concatenate([centre - half, centre + half])


def turn_image(image: np.ndarray, degrees: float) -> tuple[np.ndarray, np.ndarray]:
    """The whole image turned by `degrees` (clockwise on screen for positive angles, as face_roll counts them) on a
    canvas large enough to keep every pixel -> (turned image, 2x3 matrix that maps points onto it)."""
    h, w = image.shape[:2]
    m = cv2.getRotationMatrix2D(((w - 1) / 2, (h - 1) / 2), -degrees, 1.0)  # OpenCV's positive is anti-clockwise
    cos, sin = abs(m[0, 0]), abs(m[0, 1])
    out_w, out_h = int(math.ceil(h * sin + w * cos)), int(math.ceil(h * cos + w * sin))
    m[:, 2] += np.array([(out_w - 1) / 2, (out_h - 1) / 2]) - np.array([(w - 1) / 2, (h - 1) / 2])
    return cv2.warpAffine(image, m, (out_w, out_h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                          borderValue=0), m


def _normalize_arithmetic(crop: np.ndarray) -> np.ndarray:
    x = crop.astype(np.float32) * np.float32(1.0 / 255.0)
    x -= IMAGENET_MEAN
    x /= IMAGENET_STD
    return np.ascontiguousarray(x.transpose(2, 0, 1))


# one float32 table per channel, built with the same operations, so the lookup is bit-identical and ~3x faster
_NORMALIZE_LUT = np.ascontiguousarray(_normalize_arithmetic(np.arange(256, dtype=np.uint8).reshape(1, 256, 1)
                                                            .repeat(3, axis=2))[:, 0, :])


def normalize_crop(crop: np.ndarray) -> np.ndarray:
    """RGB uint8 S x S x 3 -> float32 3 x S x S with ImageNet mean/std (the only normalisation in the project)."""
    if crop.dtype != np.uint8 or crop.ndim != 3 or crop.shape[2] != 3:
        raise ValueError(f"normalize_crop expects an RGB uint8 H x W x 3 crop, got {crop.dtype} {crop.shape}")
    return np.stack([cv2.LUT(channel, _NORMALIZE_LUT[k]) for k, channel in enumerate(cv2.split(crop))])


def denormalize_crop(chw: np.ndarray) -> np.ndarray:
    """Inverse of normalize_crop, for drawing."""
    x = np.asarray(chw, dtype=np.float32).transpose(1, 2, 0) * IMAGENET_STD + IMAGENET_MEAN
    return np.clip(np.rint(x * 255.0), 0, 255).astype(np.uint8)


# --- training augmentation -------------------------------------------------------------------------

@dataclass(frozen=True)
class AugmentConfig:
    scale_range: tuple[float, float] = (0.75, 1.25)
    rotation: float = 30.0  # degrees, U(-rotation, rotation)
    rotation_p: float = 0.6
    flip_p: float = 0.5
    shift: float = 0.0  # the crop centre moves by U(-shift, shift) of the crop side along each axis

    @classmethod
    def from_any(cls, value) -> "AugmentConfig":
        if value is None:
            return cls()
        if isinstance(value, cls):
            return value
        if isinstance(value, dict):
            unknown = set(value) - set(cls.__dataclass_fields__)
            if unknown:
                raise ValueError(f"unknown augmentation options {sorted(unknown)}; known: {sorted(cls.__dataclass_fields__)}")
            return cls(**{k: tuple(v) if k == "scale_range" else v for k, v in value.items()})
        raise ValueError(f"augment_config must be a dict or AugmentConfig, got {type(value).__name__}")

    def max_extent(self) -> float:
        """Largest side of the source region an augmented crop can touch, relative to the nominal crop."""
        r = math.radians(min(abs(self.rotation), 45.0)) if self.rotation_p > 0 else 0.0
        return max(self.scale_range) * (math.cos(r) + math.sin(r)) + 2 * abs(self.shift)


@dataclass(frozen=True)
class AugmentParams:
    scale_factor: float = 1.0  # > 1 zooms out (a larger source region)
    rotation: float = 0.0
    flip: bool = False
    shift: tuple[float, float] = (0.0, 0.0)  # crop centre offset, fractions of the nominal crop side


def sample_augmentation(rng: np.random.Generator, config: AugmentConfig) -> AugmentParams:
    scale_factor = float(rng.uniform(*config.scale_range))
    rotation = float(rng.uniform(-config.rotation, config.rotation)) if rng.random() < config.rotation_p else 0.0
    flip = bool(rng.random() < config.flip_p)
    # drawn last and only when asked for, so runs without a shift see the same random stream as before
    shift = tuple(float(v) for v in rng.uniform(-config.shift, config.shift, 2)) if config.shift else (0.0, 0.0)
    return AugmentParams(scale_factor, rotation, flip, shift)


def flip_permutation(flip_pairs, num_landmarks: int) -> np.ndarray:
    """Index array `perm` such that `landmarks_of_mirrored_face = mirrored_points[perm]`."""
    perm = np.arange(num_landmarks)
    for a, b in flip_pairs:
        perm[a], perm[b] = b, a
    return perm

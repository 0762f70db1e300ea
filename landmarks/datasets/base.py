"""What every dataset reader returns: samples and the dataset's landmark conventions."""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import cv2
import numpy as np

from landmarks.geometry import flip_permutation, landmark_box

log = logging.getLogger("landmarks.datasets")


class DatasetError(ValueError):
    """The data on disk or the requested split cannot be read; the message says what to fix."""


@dataclass
class Sample:
    image_path: Path
    landmarks: np.ndarray  # (M, 2) float64, 0-based pixel centres
    box: np.ndarray  # [x1, y1, x2, y2] of the landmarks (the HRNet crop convention)
    sample_id: str
    attributes: dict = field(default_factory=dict)  # always has "subsets": list[str]
    image: np.ndarray | None = None  # RGB uint8, for datasets that ship images inside one file (COFW)


@dataclass(frozen=True)
class DatasetInfo:
    name: str
    num_landmarks: int
    flip_pairs: tuple[tuple[int, int], ...]
    norm_indices: tuple[int, int]
    sigma: float
    train_split: str = "train"  # what training reads by default
    test_split: str = "test"  # what scoring reads by default (also the training's validation split)

    @property
    def flip_permutation(self) -> np.ndarray:
        return flip_permutation(self.flip_pairs, self.num_landmarks)

    def to_dict(self) -> dict:
        return {"name": self.name, "num_landmarks": self.num_landmarks,
                "flip_pairs": [list(p) for p in self.flip_pairs], "norm_indices": list(self.norm_indices),
                "sigma": self.sigma}


class SampleList(list):
    """list[Sample] that also says which parts of the dataset were found on disk."""

    def __init__(self, samples=(), found_subsets=(), missing_subsets=(), skipped=()):
        super().__init__(samples)
        self.found_subsets = list(found_subsets)
        self.missing_subsets = list(missing_subsets)
        self.skipped = list(skipped)  # annotations whose image is missing


def pairs(*items):
    return tuple((int(a), int(b)) for a, b in items)


# iBUG 68 (0-based): jaw, brows, nostrils, eyes, outer lips, inner lips
IBUG68_PAIRS = pairs(
    *[(i, 16 - i) for i in range(8)],
    *[(17 + i, 26 - i) for i in range(5)],
    (31, 35), (32, 34),
    (36, 45), (37, 44), (38, 43), (39, 42), (40, 47), (41, 46),
    (48, 54), (49, 53), (50, 52), (55, 59), (56, 58),
    (60, 64), (61, 63), (65, 67),
)

def make_sample(image_path, landmarks, sample_id, attributes=None, image=None) -> Sample:
    pts = np.asarray(landmarks, dtype=np.float64)
    if not np.all(np.isfinite(pts)):
        raise DatasetError(f"{sample_id}: landmarks contain NaN or infinity")
    attrs = dict(attributes or {})
    attrs.setdefault("subsets", [])
    return Sample(Path(image_path), pts, landmark_box(pts), sample_id, attrs, image)


IMAGE_FLAGS = cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION  # annotations refer to the stored pixels


def load_image(sample: Sample) -> np.ndarray:
    """RGB uint8 H x W x 3 of a sample."""
    if sample.image is not None:
        return sample.image
    try:
        data = np.fromfile(sample.image_path, np.uint8)
    except OSError:
        data = None
    # imdecode, not imread: imread fills the missing part of a truncated JPEG with gray and says nothing, and such
    # an image would be scored (or trained on) as if it were whole
    bgr = None if data is None or not data.size else cv2.imdecode(data, IMAGE_FLAGS)
    if bgr is None:
        raise DatasetError(f"cannot read image {sample.image_path} (sample {sample.sample_id}): missing, truncated "
                           "or not an image")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def image_in(folder: Path, name: str, where: str) -> Path:
    """`folder / name` for an image name read from an annotation file. Names that could leave the folder are
    refused before the file system is asked, so that uploaded sets cannot read (or probe for) other files;
    the name is not echoed, it may be a path of this machine."""
    parts = PurePosixPath(name)
    if not name or parts.is_absolute() or ".." in parts.parts:
        raise DatasetError(f"{where}: the image name must be a path relative to the image folder, without a "
                           "leading '/' or '..'; fix that row")
    return folder / name


def require_dir(data_root, what: str) -> Path:
    root = Path(data_root)
    if not root.is_dir():
        raise DatasetError(f"{what} data root {root} is not a directory")
    return root

"""What every dataset reader returns: samples and the dataset's landmark conventions."""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import cv2
import numpy as np

from trainer.geometry import flip_permutation, landmark_box

log = logging.getLogger("trainer.datasets")


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


def _pairs(*pairs):
    return tuple((int(a), int(b)) for a, b in pairs)


# iBUG 68 (0-based): jaw, brows, nostrils, eyes, outer lips, inner lips
IBUG68_PAIRS = _pairs(
    *[(i, 16 - i) for i in range(8)],
    *[(17 + i, 26 - i) for i in range(5)],
    (31, 35), (32, 34),
    (36, 45), (37, 44), (38, 43), (39, 42), (40, 47), (41, 46),
    (48, 54), (49, 53), (50, 52), (55, 59), (56, 58),
    (60, 64), (61, 63), (65, 67),
)

# WFLW 98: contour 0-32, brows 33-41 / 42-50, nose 51-59, eyes 60-67 / 68-75, mouth 76-95, pupils 96/97
WFLW98_PAIRS = _pairs(
    *[(i, 32 - i) for i in range(16)],
    (33, 46), (34, 45), (35, 44), (36, 43), (37, 42), (38, 50), (39, 49), (40, 48), (41, 47),
    (55, 59), (56, 58),
    (60, 72), (61, 71), (62, 70), (63, 69), (64, 68), (65, 75), (66, 74), (67, 73),
    (76, 82), (77, 81), (78, 80), (83, 87), (84, 86),
    (88, 92), (89, 91), (93, 95),
    (96, 97),
)

# COFW 29 (LFPW order, 0-based): brow corners/centres, eye corners/lids, pupils, nostrils, mouth corners;
# 20, 21 (nose) and 24-28 (lip centres, chin) lie on the midline
COFW29_PAIRS = _pairs(
    (0, 1), (2, 3), (4, 6), (5, 7), (8, 9), (10, 11), (12, 14), (13, 15), (16, 17), (18, 19), (22, 23),
)

W300_INFO = DatasetInfo("300w", 68, IBUG68_PAIRS, (36, 45), 1.0)
WFLW_INFO = DatasetInfo("wflw", 98, WFLW98_PAIRS, (60, 72), 1.5)
# HRNet's normaliser for COFW (points 8/9); the RCPR authors' own inter-pupil code uses 16/17
COFW_INFO = DatasetInfo("cofw", 29, COFW29_PAIRS, (8, 9), 1.5)
CSV_INFO = DatasetInfo("csv", 68, IBUG68_PAIRS, (36, 45), 1.0)


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
    bgr = cv2.imread(str(sample.image_path), IMAGE_FLAGS)
    if bgr is None:
        raise DatasetError(f"cannot read image {sample.image_path} (sample {sample.sample_id}): missing or not an image")
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

"""300W directory layout: `<subset>/NAME.pts` beside `NAME.jpg|png` for the six standard subsets.

Sample id = `<subset>/<pts stem><image suffix>`. In the usual layout (one image file per face, e.g.
`helen/testset/296814969_3.jpg`) that is the image path; in the original iBUG downloads, where one photo
holds several faces (`1051618982.jpg` with `1051618982_1.pts`, `_2.pts`), the face's `_N` suffix is kept,
so both layouts give the same ids.
"""
from __future__ import annotations

import re
import zlib
from pathlib import Path

import numpy as np

from landmarks.datasets.base import IBUG68_PAIRS, DatasetError, DatasetInfo, SampleList, log, make_sample, require_dir

INFO = DatasetInfo("300w", 68, IBUG68_PAIRS, (36, 45), 1.0, train_split="train", test_split="common")

SUBSETS = ("afw", "helen/trainset", "helen/testset", "lfpw/trainset", "lfpw/testset", "ibug")
SPLITS = {
    "train": ("afw", "helen/trainset", "lfpw/trainset"),
    "common": ("helen/testset", "lfpw/testset"),
    "challenge": ("ibug",),
    "full": ("helen/testset", "lfpw/testset", "ibug"),
    "dev": ("helen/trainset",),
    "train-dev": ("afw", "helen/trainset", "lfpw/trainset"),
}
SPLIT_OF_SUBSET = {"helen/testset": "common", "lfpw/testset": "common", "ibug": "challenge"}
IMAGE_SUFFIXES = (".jpg", ".png", ".jpeg", ".JPG", ".PNG", ".JPEG", ".bmp")
DEV_MODULUS = 8  # dev = helen/trainset faces whose id hashes to 0 mod 8 (~1/8, independent of what else is on disk)


def is_dev(sample_id: str) -> bool:
    return zlib.crc32(sample_id.encode("utf-8")) % DEV_MODULUS == 0


def read_pts(path) -> np.ndarray:
    """300W .pts (1-based pixel coordinates) -> (M, 2) float64 0-based."""
    text = Path(path).read_text(encoding="utf-8", errors="replace")
    try:
        body = text[text.index("{") + 1:text.rindex("}")]
    except ValueError:
        raise DatasetError(f"{path}: not a .pts file (no '{{ ... }}' block)") from None
    m = re.search(r"n_points\s*:\s*(\d+)", text)
    try:
        pts = np.array([[float(v) for v in line.split()] for line in body.splitlines() if line.strip()])
    except ValueError:
        raise DatasetError(f"{path}: point lines must be two numbers 'x y'") from None
    if pts.ndim != 2 or pts.shape[1] != 2:
        raise DatasetError(f"{path}: point lines must be two numbers 'x y'")
    if m and int(m.group(1)) != len(pts):
        raise DatasetError(f"{path}: header says n_points {m.group(1)} but {len(pts)} points follow")
    return pts - 1.0


def _find_image(pts_path: Path) -> Path | None:
    for stem in (pts_path.stem, re.sub(r"_\d+$", "", pts_path.stem)):
        for suffix in IMAGE_SUFFIXES:
            candidate = pts_path.with_name(stem + suffix)
            if candidate.is_file():
                return candidate
    return None


def read_subset(root: Path, subset: str, num_landmarks: int = 68) -> tuple[list, list]:
    samples, skipped = [], []
    for pts_path in sorted((root / subset).glob("*.pts")):
        image = _find_image(pts_path)
        if image is None:
            skipped.append(str(pts_path.relative_to(root)))
            continue
        pts = read_pts(pts_path)
        if len(pts) != num_landmarks:
            raise DatasetError(f"{pts_path}: {len(pts)} points, expected {num_landmarks}")
        sample_id = f"{subset}/{pts_path.stem}{image.suffix}"
        subsets = [subset] + ([SPLIT_OF_SUBSET[subset]] if subset in SPLIT_OF_SUBSET else [])
        samples.append(make_sample(image, pts, sample_id, {"subset": subset, "subsets": subsets}))
    return samples, skipped


def present_subsets(root) -> list[str]:
    """The subsets with labels under `root`, in SUBSETS order."""
    root = Path(root)
    return [s for s in SUBSETS if (root / s).is_dir() and any((root / s).glob("*.pts"))]


def split_present(root, default: str) -> str:
    """The split to score at `root` when none is named: `default`, unless none of its subsets is there; then the
    subsets that are (an afw/ folder alone is scored as afw, not refused)."""
    present = present_subsets(root)
    if not present or set(split_subsets(default)) & set(present):
        return default
    return "+".join(present)


def split_subsets(split: str) -> tuple[str, ...]:
    if split in SPLITS:
        return SPLITS[split]
    parts = tuple(split.split("+"))
    if all(p in SUBSETS for p in parts):
        return parts
    raise DatasetError(f"unknown 300W split {split!r}; use one of {sorted(SPLITS)}, a subset "
                       f"({', '.join(SUBSETS)}) or subsets joined with '+'")


def check_split(split: str) -> None:
    split_subsets(split)


def load(data_root, split: str, num_landmarks: int = 68) -> SampleList:
    wanted = split_subsets(split)
    root = require_dir(data_root, "300W")
    found, missing, samples, skipped = [], [], [], []
    for subset in wanted:
        subset_samples, subset_skipped = read_subset(root, subset, num_landmarks)
        skipped += subset_skipped
        if subset_samples:
            found.append(subset)
            samples += subset_samples
        else:
            missing.append(subset)
    if missing:
        log.warning("300W split %r: subsets %s not found under %s (using %s)", split, missing, root, found)
    if skipped:
        log.warning("300W: %d .pts files without an image were skipped (e.g. %s)", len(skipped), skipped[0])
    if not samples:
        raise DatasetError(f"300W split {split!r}: none of the subsets {list(wanted)} has .pts files with images "
                           f"under {root}")
    if split == "dev":
        samples = [s for s in samples if is_dev(s.sample_id)]
    elif split == "train-dev":
        samples = [s for s in samples if not (s.attributes["subset"] == "helen/trainset" and is_dev(s.sample_id))]
    return SampleList(samples, found, missing, skipped)

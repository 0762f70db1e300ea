"""Landmark CSV (the P1 YouTube-Faces layout): `<split>_frames_keypoints.csv` whose header starts with an
empty cell, rows `image name, x0, y0, ..., x67, y67`, images in `<split>/`. Sample id = `<split>/<name>`; an image
name is the person's name and a frame number (`Luis_Fonsi_21.jpg`), and the same people appear in both splits."""
from __future__ import annotations

import csv
import re

import numpy as np

from landmarks.datasets.base import IBUG68_PAIRS, DatasetError, DatasetInfo, SampleList, image_in, log, make_sample, require_dir

# 68 points in the 300W (iBUG) order
INFO = DatasetInfo("csv", 68, IBUG68_PAIRS, (36, 45), 1.0, train_split="training", test_split="test")

SPLITS = ("training", "test")
_FRAME = re.compile(r"_\d+$")


def subject(sample_id: str) -> str:
    """The person a frame shows: its image name without the frame number and extension."""
    name = sample_id.rpartition("/")[2]
    return _FRAME.sub("", name.rpartition(".")[0] or name)


def check_split(split: str) -> None:
    if split not in SPLITS:
        raise DatasetError(f"unknown CSV split {split!r}; use one of {', '.join(SPLITS)}")


def load(data_root, split: str, num_landmarks: int = 68) -> SampleList:
    check_split(split)
    root = require_dir(data_root, "landmark CSV")
    csv_path = root / f"{split}_frames_keypoints.csv"
    if not csv_path.is_file():
        raise DatasetError(f"{csv_path} not found (expected <split>_frames_keypoints.csv in {root})")
    with open(csv_path, newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    if not rows:
        raise DatasetError(f"{csv_path} is empty")
    header, body = rows[0], rows[1:]
    if len(header) != 1 + 2 * num_landmarks:
        raise DatasetError(f"{csv_path}: {len(header) - 1} coordinate columns, expected {2 * num_landmarks}")
    samples, skipped = [], []
    for n, row in enumerate(body, start=2):
        if not row:
            continue
        if len(row) != len(header):
            raise DatasetError(f"{csv_path}:{n}: {len(row)} fields, expected {len(header)}")
        try:
            pts = np.array(row[1:], dtype=np.float64).reshape(num_landmarks, 2)
        except ValueError:
            raise DatasetError(f"{csv_path}:{n}: non-numeric coordinate") from None
        image = image_in(root / split, row[0], f"{csv_path.name}:{n}")
        if not image.is_file():
            skipped.append(row[0])
            continue
        samples.append(make_sample(image, pts, f"{split}/{row[0]}", {"subsets": []}))
    if skipped:
        log.warning("%s: %d rows skipped, image missing in %s (e.g. %s)", csv_path, len(skipped), root / split, skipped[0])
    if not samples:
        raise DatasetError(f"{csv_path}: no row has its image in {root / split}")
    return SampleList(samples, [split], [], skipped)

"""COFW: `COFW_{train,test}_color.mat`, MATLAB v7.3 (HDF5) or older. Keys IsTr/phisTr/bboxesTr and
IsT/phisT/bboxesT: a cell array of images, phis = 29 x, 29 y, 29 occlusion flags per face (MATLAB 1-based
coordinates, converted to 0-based here), boxes x, y, w, h. Images are held in memory.

Sample id = `<mat file name>/<1-based index, 4 digits>`, e.g. `COFW_test_color.mat/0001`.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from landmarks.datasets.base import DatasetError, DatasetInfo, pairs, SampleList, make_sample, require_dir

# COFW 29 (LFPW order, 0-based): brow corners/centres, eye corners/lids, pupils, nostrils, mouth corners;
# 20, 21 (nose) and 24-28 (lip centres, chin) lie on the midline
PAIRS = pairs(
    (0, 1), (2, 3), (4, 6), (5, 7), (8, 9), (10, 11), (12, 14), (13, 15), (16, 17), (18, 19), (22, 23),
)

# HRNet's normaliser for COFW (points 8/9); the RCPR authors' own inter-pupil code uses 16/17
INFO = DatasetInfo("cofw", 29, PAIRS, (8, 9), 1.5)

NUM_LANDMARKS = INFO.num_landmarks
KEYS = {"train": ("COFW_train_color.mat", "IsTr", "phisTr", "bboxesTr"),
        "test": ("COFW_test_color.mat", "IsT", "phisT", "bboxesT")}


def _as_rgb(img: np.ndarray, where: str) -> np.ndarray:
    img = np.asarray(img)
    if img.ndim == 2:
        img = np.stack([img] * 3, axis=-1)
    if img.ndim != 3 or img.shape[2] != 3:
        raise DatasetError(f"{where}: image of shape {img.shape} is neither grey nor RGB")
    if img.dtype != np.uint8:
        img = np.clip(img, 0, 255).astype(np.uint8)
    return np.ascontiguousarray(img)


def _read_hdf5(path: Path, images_key: str, phis_key: str, boxes_key: str):
    import h5py

    with h5py.File(path, "r") as f:
        missing = [k for k in (images_key, phis_key, boxes_key) if k not in f]
        if missing:
            raise DatasetError(f"{path}: missing variables {missing}")
        # MATLAB stores column-major: an N x 87 matrix reads back as 87 x N, an H x W x 3 image as 3 x W x H
        phis = np.asarray(f[phis_key], dtype=np.float64).T
        boxes = np.asarray(f[boxes_key], dtype=np.float64).T
        refs = np.asarray(f[images_key]).reshape(-1)
        images = [np.asarray(f[r]).T for r in refs]
    return images, phis, boxes


def _read_legacy(path: Path, images_key: str, phis_key: str, boxes_key: str):
    from scipy.io import loadmat

    try:
        mat = loadmat(path)
    except Exception as exc:  # scipy raises several types for damaged files
        raise DatasetError(f"{path}: cannot read as a MATLAB file ({exc})") from None
    missing = [k for k in (images_key, phis_key, boxes_key) if k not in mat]
    if missing:
        raise DatasetError(f"{path}: missing variables {missing}")
    images = [np.asarray(x) for x in mat[images_key].reshape(-1)]
    return images, np.asarray(mat[phis_key], dtype=np.float64), np.asarray(mat[boxes_key], dtype=np.float64)


def read_mat(path, images_key: str, phis_key: str, boxes_key: str):
    import h5py

    path = Path(path)
    reader = _read_hdf5 if h5py.is_hdf5(path) else _read_legacy
    images, phis, boxes = reader(path, images_key, phis_key, boxes_key)
    if phis.ndim != 2 or phis.shape[1] != 3 * NUM_LANDMARKS:
        raise DatasetError(f"{path}: {phis_key} has shape {phis.shape}, expected (N, {3 * NUM_LANDMARKS})")
    if boxes.shape != (len(phis), 4) or len(images) != len(phis):
        raise DatasetError(f"{path}: {len(images)} images, {phis.shape[0]} shapes and boxes {boxes.shape} disagree")
    return images, phis, boxes


def check_split(split: str) -> None:
    if split not in KEYS:
        raise DatasetError(f"unknown COFW split {split!r}; use {' or '.join(KEYS)}")


def load(data_root, split: str) -> SampleList:
    check_split(split)
    root = require_dir(data_root, "COFW")
    name, images_key, phis_key, boxes_key = KEYS[split]
    path = root / name
    if not path.is_file():
        raise DatasetError(f"COFW: {name} not found in {root}")
    images, phis, boxes = read_mat(path, images_key, phis_key, boxes_key)
    samples = []
    for i, (img, phi, box) in enumerate(zip(images, phis, boxes)):
        sample_id = f"{name}/{i + 1:04d}"
        pts = np.stack([phi[:NUM_LANDMARKS], phi[NUM_LANDMARKS:2 * NUM_LANDMARKS]], axis=1) - 1.0
        x, y, w, h = box
        attrs = {"occluded": phi[2 * NUM_LANDMARKS:].astype(bool), "rect": np.array([x - 1, y - 1, x - 1 + w, y - 1 + h])}
        samples.append(make_sample(path, pts, sample_id, attrs, image=_as_rgb(img, sample_id)))
    return SampleList(samples, [split], [])

"""Writers for tiny datasets in the exact published file formats (used by tests/test_data_*.py)."""
from __future__ import annotations

import csv
from pathlib import Path

import cv2
import numpy as np


def face_image(path: Path, size=(120, 100), seed=0) -> np.ndarray:
    """A random RGB image written as JPEG/PNG; returns the RGB array as it reads back."""
    rng = np.random.default_rng(seed)
    rgb = rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    return cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)


def random_shape(m: int, seed=0, low=20.0, high=80.0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(low, high, (m, 2)).round(3)


def write_pts(path: Path, pts0: np.ndarray) -> None:
    """300W .pts with 1-based coordinates from 0-based points."""
    lines = ["version: 1", f"n_points:  {len(pts0)}", "{"] + [f"{x + 1:.3f} {y + 1:.3f}" for x, y in pts0] + ["}"]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")


def write_wflw_list(path: Path, rows) -> None:
    """rows: (pts (98, 2), rect (4,), flags (6,), image path)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as f:
        for pts, rect, flags, rel in rows:
            values = [f"{v:.6f}" for v in pts.reshape(-1)] + [str(int(v)) for v in rect] + [str(int(v)) for v in flags]
            f.write(" ".join(values + [rel]) + "\n")


def write_cofw_v73(path: Path, images, phis, boxes, keys=("IsT", "phisT", "bboxesT")) -> None:
    """MATLAB v7.3 layout: HDF5 with a 512-byte MATLAB user block, column-major (transposed) matrices and
    the image cell array as object references into #refs#."""
    import h5py

    with h5py.File(path, "w", userblock_size=512) as f:
        refs_group = f.create_group("#refs#")
        refs = []
        for i, img in enumerate(images):
            stored = img.transpose(2, 1, 0) if img.ndim == 3 else img.T
            refs.append(refs_group.create_dataset(f"img{i}", data=stored).ref)
        cell = f.create_dataset(keys[0], (1, len(refs)), dtype=h5py.ref_dtype)
        for i, r in enumerate(refs):
            cell[0, i] = r
        f.create_dataset(keys[1], data=np.asarray(phis, dtype=np.float64).T)
        f.create_dataset(keys[2], data=np.asarray(boxes, dtype=np.float64).T)
    header = b"MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: Mon Jan  1 00:00:00 2024 HDF5 schema 1.00 ."
    with open(path, "r+b") as f:
        f.write(header.ljust(128, b" "))


def write_cofw_v5(path: Path, images, phis, boxes, keys=("IsT", "phisT", "bboxesT")) -> None:
    from scipy.io import savemat

    cell = np.empty((len(images), 1), dtype=object)
    for i, img in enumerate(images):
        cell[i, 0] = img
    savemat(path, {keys[0]: cell, keys[1]: np.asarray(phis, float), keys[2]: np.asarray(boxes, float)})


def write_landmark_csv(root: Path, split: str, rows) -> None:
    """rows: (image name, pts (68, 2)); header with an empty first cell as in the P1 files."""
    root.mkdir(parents=True, exist_ok=True)
    with open(root / f"{split}_frames_keypoints.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow([""] + [str(i) for i in range(136)])
        for name, pts in rows:
            w.writerow([name] + [f"{v:.1f}" for v in pts.reshape(-1)])


def tiny_onnx(path: Path, num_landmarks: int, input_size: int | None = None) -> Path:
    """A stand-in landmark network in ONNX: 4x4 average pooling then a fixed 1x1 convolution to M heatmaps
    (input "image" N x 3 x S x S, output "heatmaps" N x M x S/4 x S/4)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    side = input_size if input_size else "S"
    quarter = input_size // 4 if input_size else "s"
    weights = np.random.default_rng(0).normal(size=(num_landmarks, 3, 1, 1)).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("AveragePool", ["image"], ["pooled"], kernel_shape=[4, 4], strides=[4, 4]),
         helper.make_node("Conv", ["pooled", "w"], ["heatmaps"])],
        "tiny",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 3, side, side])],
        [helper.make_tensor_value_info("heatmaps", TensorProto.FLOAT, ["N", num_landmarks, quarter, quarter])],
        [numpy_helper.from_array(weights, "w")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path

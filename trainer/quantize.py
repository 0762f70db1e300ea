"""INT8 model folders: ONNX Runtime static quantization calibrated on face crops of a training split.

Static (not dynamic) quantization because the network is convolutional: dynamic quantization in ONNX Runtime
covers MatMul-style ops and would leave the convolutions in fp32. Crops are made by the served preprocessing
(landmarks.landmarker.prepare_faces), so calibration sees exactly the inputs the model is served.
"""
from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

import numpy as np

from landmarks.datasets import load_samples
from landmarks.datasets.base import load_image
from landmarks.landmarker import prepare_faces

COPIED = ("spec.json", "config.json")


def calibration_crops(dataset: str, data_root: str | Path, split: str, input_size: int, count: int = 128) -> np.ndarray:
    """(count, 3, S, S) float32 crops of faces spread evenly over the split (deterministic)."""
    samples = load_samples(dataset, data_root, split)
    if not samples:
        raise ValueError(f"split {split!r} of {dataset} under {data_root} is empty; calibration needs faces")
    picks = np.unique(np.linspace(0, len(samples) - 1, min(count, len(samples))).round().astype(int))
    crops = [prepare_faces(load_image(samples[i]), samples[i].box[None], input_size)[0] for i in picks]
    return np.concatenate(crops)


def quantize_model_dir(src: Path, dst: Path, crops: np.ndarray, batch: int = 16) -> Path:
    """Write an INT8 copy of the model folder `src` into `dst` (model.onnx, its card marked as quantized)."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Crops(CalibrationDataReader):
        def __init__(self, name: str):
            self.batches = iter([{name: crops[i:i + batch]} for i in range(0, len(crops), batch)])

        def get_next(self):
            return next(self.batches, None)

    from trainer.model_uri import load_onnx, make_model_folder, read_card

    src, dst = Path(src), Path(dst)
    card = read_card(src)
    input_name = load_onnx(src / "model.onnx", load_external_data=False).graph.input[0].name
    make_model_folder(dst, [src])
    with tempfile.TemporaryDirectory() as tmp:
        prepared = Path(tmp) / "prepared.onnx"
        quant_pre_process(str(src / "model.onnx"), str(prepared), skip_symbolic_shape=True)
        # QDQ with per-channel weights: the format ONNX Runtime's CPU kernels fuse into integer convolutions
        quantize_static(str(prepared), str(dst / "model.onnx"), Crops(input_name), quant_format=QuantFormat.QDQ,
                        per_channel=True, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
    for name in COPIED:
        if (src / name).is_file():
            shutil.copyfile(src / name, dst / name)
    card["quantized"] = {"method": "onnxruntime static, QDQ, per-channel int8 weights, uint8 activations",
                         "calibration_faces": int(len(crops)), "from_run": card.get("run_id")}
    (dst / "model_card.json").write_text(json.dumps(card, indent=1) + "\n")
    return dst

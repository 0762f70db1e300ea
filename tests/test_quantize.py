"""INT8 model folders: calibrated on real crops, close to the fp32 model, marked in their card."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from landmarks.datasets import DATASETS, load_samples
from landmarks.datasets.base import load_image
from landmarks.landmarker import OnnxLandmarker
from landmarks.metrics import nme_per_image

REPO = Path(__file__).resolve().parents[1]
DEFAULT = REPO / "sdhrnet" / "default_model"


@pytest.fixture(scope="module")
def int8_model(shared_data, tmp_path_factory):
    out = tmp_path_factory.mktemp("int8") / "model"
    cmd = [sys.executable, "-m", "sdhrnet.cli", "quantize", "--model", str(DEFAULT), "--dataset", "300w",
           "--data-root", str(shared_data / "300w"), "--faces", "16", "--out", str(out)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    return out, json.loads(done.stdout)


def test_int8_model_is_smaller_marked_and_close_to_fp32(int8_model, shared_data):
    out, summary = int8_model
    assert summary["faces"] == 16 and summary["bytes"]["int8"] < 0.6 * summary["bytes"]["fp32"]
    card = json.loads((out / "model_card.json").read_text())
    assert card["quantized"]["calibration_faces"] == 16 and card["input_size"] == 128
    assert not (out / "weights.pt").exists(), "fp32 weights do not travel with the INT8 model"
    samples = load_samples("300w", shared_data / "300w", "dev")[:12]
    models = {k: OnnxLandmarker(p / "model.onnx", input_size=128) for k, p in (("fp32", DEFAULT), ("int8", out))}
    pred = {k: np.stack([m.predict(load_image(s), s.box[None])[0][0] for s in samples]) for k, m in models.items()}
    gt = np.stack([s.landmarks for s in samples])
    # how far INT8 moves the points, in the units of NME (outer-eye distance of the ground truth)
    shift = nme_per_image(pred["int8"], gt, DATASETS["300w"]) - nme_per_image(pred["fp32"], gt, DATASETS["300w"])
    moved = np.linalg.norm(pred["int8"] - pred["fp32"], axis=-1).mean()
    assert moved > 0, "the INT8 graph really computes something else"
    assert abs(shift.mean()) < 0.02, shift


def test_quantizing_twice_is_refused(int8_model, shared_data):
    out, _ = int8_model
    again = subprocess.run([sys.executable, "-m", "sdhrnet.cli", "quantize", "--model", str(out), "--dataset", "300w",
                            "--data-root", str(shared_data / "300w"), "--out", str(out.parent / "again")],
                           capture_output=True, text=True, timeout=300)
    assert again.returncode == 2 and "already quantized" in again.stderr


def test_the_int8_copy_is_not_written_over_its_source(tmp_path):
    from tests.service_support import build_tiny_model
    from trainer.quantize import quantize_model_dir

    src = build_tiny_model(tmp_path / "model")
    before = (src / "model.onnx").read_bytes()
    with pytest.raises(ValueError, match="holds a model the new one is made from"):
        quantize_model_dir(src, tmp_path / "model", np.zeros((1, 3, 64, 64), np.float32))
    assert (src / "model.onnx").read_bytes() == before, "the fp32 model is still there"


def test_a_bare_onnx_file_or_a_broken_one_is_a_message(tmp_path, capsys):
    from sdhrnet.cli import main as cli
    from tests.data_helpers import face_image, random_shape, write_landmark_csv
    from tests.service_support import build_tiny_model

    bare = tmp_path / "bare"
    bare.mkdir()
    (bare / "model.onnx").write_bytes((build_tiny_model(tmp_path / "model") / "model.onnx").read_bytes())
    broken = build_tiny_model(tmp_path / "broken")
    (broken / "model.onnx").write_text("not a protobuf")
    face_image(tmp_path / "data" / "training" / "a.jpg")  # a face to calibrate on
    write_landmark_csv(tmp_path / "data", "training", [("a.jpg", random_shape(68))])
    common = ["--dataset", "csv", "--data-root", str(tmp_path / "data"), "--split", "training", "--out",
              str(tmp_path / "int8")]
    assert cli(["quantize", "--model", str(bare / "model.onnx"), *common]) == 2
    assert "without a model card giving its input_size" in capsys.readouterr().err
    assert cli(["quantize", "--model", str(broken), *common]) == 2
    err = capsys.readouterr().err
    assert f"{broken / 'model.onnx'} is not an ONNX model" in err and "Traceback" not in err

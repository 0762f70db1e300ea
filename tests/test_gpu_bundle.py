"""bench/gpu_paper.py bundle: a GPU machine's output folder comes back as a few size-capped parts, the run records
first and the largest models left out (and listed), the checkpoints never."""
import importlib.util
import io
import json
import tarfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def _gpu_paper():
    spec = importlib.util.spec_from_file_location("gpu_paper", REPO / "bench" / "gpu_paper.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _write(path: Path, size: int, seed: int) -> bytes:
    path.parent.mkdir(parents=True, exist_ok=True)
    data = np.random.default_rng(seed).bytes(size)  # incompressible, like model weights
    path.write_bytes(data)
    return data


def test_bundle_caps_parts_keeps_the_small_files_and_lists_what_it_left(tmp_path):
    src, dest = tmp_path / "out", tmp_path / "back"
    small = {f"runs/r{i}/run.json": _write(src / f"runs/r{i}/run.json", 2_000, i) for i in range(3)}
    student = _write(src / "runs/r1/artifacts/model_files/model.onnx", 600_000, 10)
    _write(src / "runs/r0/artifacts/model_files/model.onnx", 1_500_000, 11)  # the teacher: over the cap
    _write(src / "home/checkpoints/r1.ckpt", 5_000, 12)  # small, but checkpoints never travel

    assert _gpu_paper().main(["bundle", "--from", str(src), "--to", str(dest), "--max-mb", "1.0",
                              "--part-mb", "0.25"]) == 0

    parts = sorted(dest.glob("bundle.tgz.*"))
    assert len(parts) >= 2 and all(p.stat().st_size <= 250_000 for p in parts)
    with tarfile.open(fileobj=io.BytesIO(b"".join(p.read_bytes() for p in parts)), mode="r:gz") as tar:
        members = {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}
    assert {**small, "runs/r1/artifacts/model_files/model.onnx": student} == members
    summary = json.loads((dest / "bundle.json").read_text())
    assert summary["left_out"] == {"runs/r0/artifacts/model_files/model.onnx": 1_500_000}
    assert summary["parts"] == len(parts) and summary["files"] == 4

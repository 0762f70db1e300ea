"""bench/gpu_paper.py: the import asks for the preset and rows the GPU run trained; the bundle brings a GPU
machine's output folder back as a few size-capped parts, the run records first, model folders whole or not at
all (the largest left out and listed), the checkpoints never."""
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


def _unpack(dest: Path) -> dict[str, bytes]:
    parts = sorted(dest.glob("bundle.tgz.*"))
    with tarfile.open(fileobj=io.BytesIO(b"".join(p.read_bytes() for p in parts)), mode="r:gz") as tar:
        return {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}


def test_bundle_caps_parts_keeps_model_folders_whole_and_lists_what_it_left(tmp_path):
    src, dest = tmp_path / "out", tmp_path / "back"
    kept = {f"runs/r{i}/run.json": _write(src / f"runs/r{i}/run.json", 2_000, i) for i in range(3)}
    # a student's model folder: 2 x 300 kB, fits
    for name, seed in (("model_card.json", 20), ("model.onnx", 21), ("weights.pt", 22)):
        rel = f"runs/r1/artifacts/model_files/{name}"
        kept[rel] = _write(src / rel, 1_000 if name == "model_card.json" else 300_000, seed)
    # a larger model folder, each of whose files would still fit beside the first: left out whole
    _write(src / "runs/r2/artifacts/model_files/model_card.json", 1_000, 30)
    _write(src / "runs/r2/artifacts/model_files/model.onnx", 350_000, 31)
    _write(src / "runs/r2/artifacts/model_files/weights.pt", 350_000, 32)
    _write(src / "home/checkpoints/r1.ckpt", 5_000, 12)  # small, but checkpoints never travel
    _write(src / "runs/r0/.run.json.123.tmp", 100, 13)  # a record mid-write
    (tmp_path / "back").mkdir()
    (dest / "bundle.tgz.07").write_bytes(b"a part of an earlier bundle")

    assert _gpu_paper().main(["bundle", "--from", str(src), "--to", str(dest), "--max-mb", "1.0",
                              "--part-mb", "0.25"]) == 0

    parts = sorted(dest.glob("bundle.tgz.*"))
    assert len(parts) >= 3 and all(p.stat().st_size <= 250_000 for p in parts)
    assert _unpack(dest) == kept
    summary = json.loads((dest / "bundle.json").read_text())
    assert set(summary["left_out"]) == {f"runs/r2/artifacts/model_files/{n}"
                                        for n in ("model_card.json", "model.onnx", "weights.pt")}
    assert summary["bytes"] == sum(len(v) for v in kept.values()) and summary["parts"] == len(parts)
    assert summary["skipped"] == []


def test_bundle_inside_the_output_folder_does_not_pack_itself(tmp_path):
    src = tmp_path / "out"
    record = _write(src / "runs/r0/run.json", 2_000, 0)
    gpu_paper = _gpu_paper()
    for _ in range(2):  # the second bundle would hold the first if it looked inside its own folder
        assert gpu_paper.main(["bundle", "--from", str(src), "--to", str(src / "back")]) == 0
    assert _unpack(src / "back") == {"runs/r0/run.json": record}


def test_the_import_asks_the_pipeline_for_the_preset_and_rows_the_gpu_run_trained(tmp_path, monkeypatch):
    """Run names carry the preset: an import that scored `paper` rows after a `cpu` run would train them here."""
    gpu_paper = _gpu_paper()
    out = tmp_path / "out"
    (out / "runs").mkdir(parents=True)
    (out / gpu_paper.RUN_OPTIONS).write_text(json.dumps({"ablation": False, "overrides": ["epochs=3"],
                                                          "preset": "cpu"}))
    calls, asked = [], []
    monkeypatch.setattr(gpu_paper, "sdhrnet", lambda args, env: calls.append(args) or 0)
    monkeypatch.setattr(gpu_paper, "unfinished_stages", lambda ablation, preset: asked.append((ablation, preset)) or [])
    assert gpu_paper.main(["import", "--from", str(out), "--data-root", str(tmp_path)]) == 0
    assert asked == [(False, "cpu")]
    pipeline = calls[-1]
    assert pipeline[pipeline.index("--preset") + 1] == "cpu" and "--ablation" not in pipeline
    assert "input_size=256" not in pipeline and "epochs=3" in pipeline
    paper = gpu_paper.pipeline_args(tmp_path, [], ablation=True)
    assert paper[paper.index("--preset") + 1] == "paper" and "input_size=256" in paper and "--ablation" in paper

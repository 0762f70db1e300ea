"""The tiny preset end to end: teacher -> slim -> distill, tracked in a real (SQLite) MLflow store."""
import json
import subprocess
import sys

import pytest

from landmarks.selection import FACE_SCORES, read_face_scores
from trainer.tracking import client

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def pipeline(tracking_home, shared_data):
    from trainer import jobs

    root = str(shared_data / "300w")
    progress = []
    teacher = jobs.run_teacher({"dataset": "300w", "data_root": root, "preset": "tiny", "run_name": "t"})
    slim = jobs.run_slim({"dataset": "300w", "data_root": root, "preset": "tiny", "run_name": "s"},
                         jobs.JobHooks(progress=progress.append))
    distill = jobs.run_distill({"dataset": "300w", "data_root": root, "preset": "tiny", "run_name": "d",
                                "slim_run": slim.run_id, "teacher_run": f"runs:/{teacher.run_id}/model_files"})
    return {"teacher": teacher, "slim": slim, "distill": distill, "progress": progress}


def _artifacts(run_id, path=""):
    out = []
    for f in client().list_artifacts(run_id, path):
        out.extend(_artifacts(run_id, f.path) if f.is_dir else [f.path])
    return set(out)


def test_every_stage_logs_config_metrics_and_model_files(pipeline):
    for kind in ("teacher", "slim", "distill"):
        result = pipeline[kind]
        run = client().get_run(result.run_id)
        assert run.info.status == "FINISHED"
        assert run.data.params["preset"] == "tiny" and run.data.params["input_size"] == "64"
        mse = "train_s1_mse" if kind == "distill" else "train_mse"
        for key in (mse, "val_nme", "val_fr", "val_auc", "samples_per_s", "epoch_seconds", "final_nme"):
            assert any(k == key or k.startswith(key) for k in run.data.metrics), (kind, key)
        history = client().get_metric_history(result.run_id, "epoch_seconds")
        assert len(history) == 2, "one point per epoch"
        files = _artifacts(result.run_id)
        for name in ("model.onnx", "weights.pt", "spec.json", "config.json", "model_card.json", FACE_SCORES):
            assert f"model_files/{name}" in files, (kind, name)
        # each validation face's NME through the served path, clean and occluded: what the registry's policy tests
        faces = read_face_scores(result.model_dir / FACE_SCORES)
        clean, covered = faces["sets"]["dev"], faces["sets"]["dev occluded"]
        assert faces["split"] == "dev" and faces["tie_breaks"] == ["dev occluded"]
        assert len(clean["per_face"]) == len(covered["per_face"]) == clean["n"] == result.metrics["n"]
        assert clean["nme"] == pytest.approx(result.metrics["nme"], rel=0.05), "the ONNX export scores as trained"
        assert clean["per_face"] != covered["per_face"]
        assert {"plots/ced.png", "plots/predictions.png"} <= files
        assert 0 <= result.metrics["nme"] and result.metrics["split"] == "dev"
        assert result.model_dir.joinpath("model.onnx").stat().st_size > 10_000


def test_slim_logs_alphas_and_prunes_to_a_smaller_network(pipeline, tmp_path):
    slim = pipeline["slim"]
    files = _artifacts(slim.run_id)
    assert {"alphas/alphas.csv", "alphas/alphas.png", "alphas/supernet_spec.json"} <= files
    assert {"models/supernet/model.onnx", "models/supernet/model_card.json"} <= files, "the trained supernet is kept"
    m = client().get_run(slim.run_id).data.metrics
    local = client().download_artifacts(slim.run_id, "models/supernet/model_card.json", str(tmp_path))
    supernet_card = json.loads(open(local).read())
    assert supernet_card["metrics"]["nme"] == pytest.approx(m["supernet_nme"]) and supernet_card["params"] == m["supernet_params"]
    assert m["slim_params"] <= m["supernet_params"] and m["edges_kept"] <= m["edges_total"] == 132
    spec = json.loads(slim.model_dir.joinpath("spec.json").read_text())
    alphas = [a for st in spec["stages"].values() for br in st.values() for a in br.values()]
    assert all(abs(a) >= 0.5 for a in alphas), "every kept edge is at or above the tiny preset's threshold"
    stages = {p["stage"] for p in pipeline["progress"]}
    assert stages == {"slim"} and any(p.get("losses") for p in pipeline["progress"])
    assert all(p["run_id"] == slim.run_id for p in pipeline["progress"])


def test_distill_starts_from_the_slimmed_spec_and_records_both_students(pipeline):
    d, s = pipeline["distill"], pipeline["slim"]
    assert json.loads(d.model_dir.joinpath("spec.json").read_text())["stages"].keys() == \
        json.loads(s.model_dir.joinpath("spec.json").read_text())["stages"].keys()
    assert d.params == s.params
    assert set(d.card["students"]) == {"s1", "s2"} and d.card["best_student"] in ("s1", "s2")
    files = _artifacts(d.run_id)
    kept = {"models/s1/model.onnx", "models/s2/model.onnx", "models/s2/weights.pt", f"models/s1/{FACE_SCORES}"}
    assert kept <= files, "both students are kept, each with its face scores"
    m = client().get_run(d.run_id).data.metrics
    assert {"train_s1_kd_teacher", "train_s1_kd_peer", "train_s2_mse", "val_nme_s1", "val_nme_s2"} <= set(m)


def test_evaluate_cli_scores_a_run_through_the_onnx_path(pipeline, tracking_home, shared_data):
    d = pipeline["distill"]
    out = subprocess.run([sys.executable, "-m", "sdhrnet.cli", "evaluate", "--dataset", "300w", "--data-root",
                          str(shared_data / "300w"), "--split", "dev", "--model", d.run_id, "--json"],
                         capture_output=True, text=True, env={**__import__("os").environ, "SDHRNET_HOME": str(tracking_home)})
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert report["n"] == 107 and report["missing"] == []
    # the trainer validated on a 16-face subset with the same decode path; the full split is scored here
    assert 0 < report["nme"] < 2
    out = subprocess.run([sys.executable, "-m", "sdhrnet.cli", "evaluate", "--dataset", "300w", "--data-root",
                          str(shared_data / "300w"), "--split", "dev", "--model", f"runs:/{d.run_id}/models/s1", "--json"],
                         capture_output=True, text=True, env={**__import__("os").environ, "SDHRNET_HOME": str(tracking_home)})
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["n"] == 107, "a single student is scored from its own folder"


def test_repeating_a_finished_run_returns_it_without_training(pipeline, shared_data):
    from trainer import jobs

    calls = []
    again = jobs.run_slim({"dataset": "300w", "data_root": str(shared_data / "300w"), "preset": "tiny", "run_name": "s"},
                          jobs.JobHooks(progress=calls.append))
    assert again.run_id == pipeline["slim"].run_id and calls == []

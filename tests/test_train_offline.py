"""Stages without MLflow (SDHRNET_OFFLINE_RUNS): a folder records each run, a repeated command resumes or returns
it, nothing on that path imports mlflow, `sdhrnet import-runs` logs the runs into MLflow once, and the trainer
trains from the pre-cropped 300W pack of bench/gpu_paper.py as from the raw data.

The stage is the tiny preset's KD-off distillation of the published S-HRNet-300W: the smallest real stage."""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
KD_OFF = ["use_teacher=false", "use_peer=false", "masked_inputs=false"]


def _env(home: Path, offline: Path | None, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI", "SDHRNET_OFFLINE_RUNS")}
    env.update(SDHRNET_HOME=str(home), SDHRNET_THREADS="1", OMP_NUM_THREADS="1", **extra)
    if offline is not None:
        env["SDHRNET_OFFLINE_RUNS"] = str(offline)
    return env


@pytest.fixture
def settings_env(monkeypatch, tmp_path):
    """In-process settings pointing at tmp_path: offline runs in tmp_path/runs, checkpoints in tmp_path/home."""
    from sdhrnet.settings import get_settings

    monkeypatch.setenv("SDHRNET_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("SDHRNET_OFFLINE_RUNS", str(tmp_path / "runs"))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    get_settings.cache_clear()
    yield tmp_path
    get_settings.cache_clear()


@pytest.fixture(scope="module")
def no_mlflow_run(tmp_path_factory, shared_data):
    """A tiny stage run as a process in which `import mlflow` fails, then scored by its run id there too."""
    tmp = tmp_path_factory.mktemp("offline")
    fake = tmp / "fake" / "mlflow"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("raise ImportError('mlflow is not installed on this machine (test)')\n")
    env = _env(tmp / "home", tmp / "runs", PYTHONPATH=os.pathsep.join([str(tmp / "fake"), str(REPO)]))
    probe = subprocess.run([sys.executable, "-c", "import mlflow"], env=env, capture_output=True, text=True)
    assert probe.returncode != 0 and "not installed on this machine" in probe.stderr
    cmd = [sys.executable, "-m", "sdhrnet.cli", "distill", "--dataset", "300w", "--data-root",
           str(shared_data / "300w"), "--preset", "tiny", "--run-name", "offline-kd-off", "--from-slim", "s-hrnet-300w",
           "--json"] + [a for s in KD_OFF for a in ("--set", s)]
    stage = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=REPO, timeout=600)
    assert stage.returncode == 0, stage.stderr[-3000:]
    result = json.loads(stage.stdout)
    evaluate = subprocess.run([sys.executable, "-m", "sdhrnet.cli", "evaluate", "--dataset", "300w", "--data-root",
                               str(shared_data / "300w"), "--split", "dev", "--model", result["run_id"], "--json"],
                              env=env, capture_output=True, text=True, cwd=REPO, timeout=600)
    assert evaluate.returncode == 0, evaluate.stderr[-3000:]
    return {"root": tmp / "runs", "result": result, "evaluate": json.loads(evaluate.stdout)}


def test_a_stage_runs_and_is_scored_without_mlflow(no_mlflow_run):
    from trainer.offline_runs import OfflineRun

    result = no_mlflow_run["result"]
    run = OfflineRun(no_mlflow_run["root"] / result["run_id"])
    info = run.info
    assert info["status"] == "FINISHED" and info["run_name"] == "offline-kd-off"
    assert info["tags"]["sdhrnet.resume_key"] == "offline-kd-off" and info["params"]["slim_run"] == "s-hrnet-300w"
    assert [m["step"] for m in run.metrics() if m["key"] == "val_nme"] == [1, 2], "one validation per epoch"
    assert (run.artifacts / "model_files" / "model.onnx").is_file() and (run.artifacts / "plots" / "ced.png").is_file()
    assert Path(result["model_dir"]) == run.artifacts / "model_files"
    # the run id resolves to the run's folder, so stages can pass it on (--from-slim, --teacher) as with MLflow
    scored = no_mlflow_run["evaluate"]
    assert Path(scored["onnx"]) == run.artifacts / "model_files" / "model.onnx" and scored["n"] == 107


class Crash(RuntimeError):
    pass


def test_offline_run_resumes_from_its_checkpoint_and_a_finished_one_is_returned(settings_env, shared_data):
    from trainer import jobs
    from trainer.offline_runs import OfflineRun, find_runs

    params = {"dataset": "300w", "data_root": str(shared_data / "300w"), "preset": "tiny", "run_name": "resumable",
              "slim_run": "s-hrnet-300w", "overrides": {"checkpoint_every_steps": 2,
                                                        **{k: False for k in ("use_teacher", "use_peer", "masked_inputs")}}}
    seen = []

    def crash_in_epoch_2(info):
        seen.append((info.get("epoch"), info.get("step")))
        if info.get("epoch") == 2 and info.get("step") == 3:
            raise Crash("simulated crash")

    with pytest.raises(Crash):
        jobs.run_distill(params, jobs.JobHooks(progress=crash_in_epoch_2))
    [crashed] = find_runs(settings_env / "runs", "resumable")
    assert crashed.info["status"] == "FAILED"
    checkpoint = Path(crashed.info["tags"]["sdhrnet.checkpoint"])
    assert checkpoint.is_file() and checkpoint.is_relative_to(settings_env / "home")

    seen.clear()
    resumed = jobs.run_distill(params, jobs.JobHooks(progress=seen.append))
    assert resumed.run_id == crashed.run_id and OfflineRun(crashed.folder).info["status"] == "FINISHED"
    steps = [(i["epoch"], i["step"]) for i in seen if "step" in i]
    assert steps[0] == (2, 3), "training continues after the checkpoint at global step 6 (epoch 2, step 2)"
    assert [m["step"] for m in crashed.metrics() if m["key"] == "val_nme"] == [1, 2]
    assert not checkpoint.exists(), "a finished run's checkpoint is removed"

    def no_training(info):
        raise AssertionError(f"a finished run trained again: {info}")

    again = jobs.run_distill(params, jobs.JobHooks(progress=no_training))
    assert again.run_id == resumed.run_id and again.metrics == resumed.metrics
    assert len(find_runs(settings_env / "runs", "resumable")) == 1


def test_import_runs_logs_each_run_once_and_the_pipeline_finds_it_by_name(no_mlflow_run, tmp_path, monkeypatch):
    from sdhrnet.settings import get_settings

    offline_id = no_mlflow_run["result"]["run_id"]
    env = _env(tmp_path / "home", None)
    cmd = [sys.executable, "-m", "sdhrnet.cli", "import-runs", str(no_mlflow_run["root"]), "--json"]
    first = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=REPO, timeout=600)
    assert first.returncode == 0, first.stderr[-3000:]
    second = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=REPO, timeout=600)
    assert second.returncode == 0, second.stderr[-3000:]
    [a], [b] = json.loads(first.stdout), json.loads(second.stdout)
    assert (a["action"], b["action"]) == ("imported", "skipped") and a["run_id"] == b["run_id"]

    monkeypatch.setenv("SDHRNET_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("SDHRNET_OFFLINE_RUNS", raising=False)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    get_settings.cache_clear()
    try:
        from trainer.model_uri import resolve_model_dir
        from trainer.offline_runs import OfflineRun
        from trainer.tracking import Tracker, client

        tracker, status = Tracker.open("distill", "300w", "offline-kd-off", "offline-kd-off", {})
        assert (status, tracker.run_id) == ("finished", a["run_id"])
        exp = client().get_experiment_by_name("sdhrnet-300w").experiment_id
        assert len(client().search_runs([exp])) == 1, "importing twice made no duplicate"
        offline = OfflineRun(no_mlflow_run["root"] / offline_id)
        run = client().get_run(tracker.run_id)
        assert run.info.run_name == "offline-kd-off" and run.info.status == "FINISHED"
        assert run.info.start_time == offline.info["start_time"] and run.info.end_time == offline.info["end_time"]
        assert run.data.tags["sdhrnet.offline_run_id"] == offline_id
        assert run.data.params == offline.info["params"]
        history = client().get_metric_history(tracker.run_id, "val_nme")
        assert [(m.step, m.value) for m in history] == [(m["step"], m["value"]) for m in offline.metrics()
                                                         if m["key"] == "val_nme"]
        card = json.loads((resolve_model_dir(f"runs:/{tracker.run_id}/model_files") / "model_card.json").read_text())
        assert card["run_id"] == tracker.run_id, "the card names the MLflow run, not the offline one"
        assert card["metrics"] == no_mlflow_run["result"]["metrics"]
    finally:
        get_settings.cache_clear()


def test_the_trainer_trains_from_the_pack_with_the_same_splits_and_augmentation(settings_env, shared_data):
    from trainer import jobs
    from landmarks.datasets import DATASETS, load_samples
    from trainer.torch_data import LandmarkDataset
    from landmarks.datasets.w300_pack import pack_300w

    raw = shared_data / "300w"
    pack = settings_env / "pack"
    summary = pack_300w(raw, pack, input_size=64)
    assert sum(summary["faces"].values()) == len(load_samples("300w", raw, "train"))
    for split in ("dev", "train-dev"):
        assert [s.sample_id for s in load_samples("300w", pack, split)] == \
               [s.sample_id for s in load_samples("300w", raw, split)], split

    # the same augmented crops as from the raw photos: landmarks exactly, pixels up to JPEG and resampling
    picked = load_samples("300w", raw, "dev")[:8], load_samples("300w", pack, "dev")[:8]
    from_raw, from_pack = (LandmarkDataset(s, DATASETS["300w"], 64, train=True, seed=0) for s in picked)
    for i in range(8):
        (image_a, pts_a, _), (image_b, pts_b, _) = (ds.crop_with_transform(i, np.random.default_rng(i))
                                                    for ds in (from_raw, from_pack))
        assert np.abs(pts_a - pts_b).max() < 1e-4
        assert np.abs(image_a.astype(int) - image_b.astype(int)).mean() < 6, i

    result = jobs.run_distill({"dataset": "300w", "data_root": str(pack), "preset": "tiny", "run_name": "from-pack",
                               "slim_run": "s-hrnet-300w", "overrides": dict.fromkeys(
                                   ("use_teacher", "use_peer", "masked_inputs"), False)})
    assert result.metrics["split"] == "dev" and result.metrics["n"] == 16 and np.isfinite(result.metrics["nme"])


def test_the_store_follows_mlflow_resume_rules_and_a_changed_run_is_reimported_in_place(tmp_path, monkeypatch):
    """No training: the tracker API directly, then the import's replace path."""
    from sdhrnet.settings import get_settings
    from trainer.import_runs import import_runs
    from trainer.offline_runs import OfflineTracker

    root = tmp_path / "runs"
    first, state = OfflineTracker.open(root, "slim", "300w", "key", "key", {})
    assert state == "new"
    first.log_params({"epochs": 2, "nested": {"lr_steps": [1, 2]}})
    first.log_params({"epochs": 99})  # a param is written once, as in MLflow
    first.log_metrics({"val_nme": 0.5}, step=1)
    (tmp_path / "card.json").write_text("{}")
    first.log_artifact(tmp_path / "card.json", "model_files")
    first.log_json({"a": 1}, "extra/info.json")
    first.finish("KILLED")
    second, state = OfflineTracker.open(root, "slim", "300w", "key", "key", {})
    assert state == "new" and second.run_id != first.run_id, "a cancelled run is not resumed"
    assert first.run.info["params"] == {"epochs": "2", "nested.lr_steps": "[1, 2]"}
    assert json.loads((first.run.artifacts / "extra" / "info.json").read_text()) == {"a": 1}
    assert (first.download("model_files", tmp_path / "dl") / "card.json").is_file()
    second.log_metrics({"val_nme": 0.4}, step=1)
    second.finish("FAILED")
    again, state = OfflineTracker.open(root, "slim", "300w", "key", "key", {})
    assert (state, again.run_id) == ("resumed", second.run_id) and again.run.info["status"] == "RUNNING"
    assert OfflineTracker.open(root, "slim", "wflw", "key", "key", {})[1] == "new", "keys are per dataset"

    monkeypatch.setenv("SDHRNET_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("SDHRNET_OFFLINE_RUNS", raising=False)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    get_settings.cache_clear()
    try:
        from trainer.tracking import client

        before = {d.offline_id: d for d in import_runs(root)}
        assert before[second.run_id].status == "RUNNING"
        assert client().get_run(before[second.run_id].run_id).info.status == "FAILED", "nothing runs it here"
        again.log_metrics({"val_nme": 0.3}, step=2)
        again.finish()
        after = {d.offline_id: d for d in import_runs(root)}
        assert after[second.run_id].action == "replaced" and after[first.run_id].action == "skipped"
        exp = client().get_experiment_by_name("sdhrnet-300w").experiment_id
        runs = client().search_runs([exp], filter_string=f"tags.`sdhrnet.offline_run_id` = '{second.run_id}'")
        assert [r.info.status for r in runs] == ["FINISHED"]
        assert [(m.step, m.value) for m in client().get_metric_history(runs[0].info.run_id, "val_nme")] == \
               [(1, 0.4), (2, 0.3)]
    finally:
        get_settings.cache_clear()


def test_a_damaged_run_file_is_named_by_the_import(tmp_path, monkeypatch, capsys):
    from sdhrnet.cli import main
    from sdhrnet.settings import get_settings
    from trainer.offline_runs import RUN_FILE, OfflineTracker

    run, _ = OfflineTracker.open(tmp_path / "runs", "slim", "300w", "key", "key", {})
    run.finish()
    damaged = tmp_path / "runs" / run.run_id / RUN_FILE
    damaged.write_text(damaged.read_text()[:-20])  # cut short, as a copy interrupted mid-file
    monkeypatch.setenv("SDHRNET_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("SDHRNET_OFFLINE_RUNS", raising=False)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    get_settings.cache_clear()
    try:
        assert main(["import-runs", str(tmp_path / "runs")]) == 2
    finally:
        get_settings.cache_clear()
    err = capsys.readouterr().err
    assert f"{damaged} is not valid JSON" in err and "Traceback" not in err, err

"""Resolve what users pass as --model / --teacher / --from-slim to a local model folder.

Accepted: a model folder, an .onnx file inside one, an MLflow run id or `runs:/<id>`, and
`models:/<name>/<version>` or `models:/<name>@<alias>` from the registry. Run files are downloaded into the
registry's cache (registry.cache) and registered names resolved by the registry (registry.store). With
SDHRNET_OFFLINE_RUNS set, run ids and `runs:/` are looked up in that folder (trainer.offline_runs) and the registry
is out of reach (nothing imports mlflow then).
"""
from __future__ import annotations

from pathlib import Path

from sdhrnet.job_kinds import RUN_ID, RUNS_URI
from sdhrnet.settings import get_settings

MODEL_FILES = "model_files"


def _download_run_files(run_id: str, artifact_path: str = MODEL_FILES) -> Path:
    offline = get_settings().offline_runs
    if offline is not None:
        from trainer.offline_runs import run_files
        return run_files(offline, run_id, artifact_path)
    from registry.cache import fetch_run_files
    from registry.store import run_exists
    from registry.tracking import mlflow

    try:
        return fetch_run_files(run_id, artifact_path)
    except mlflow.exceptions.MlflowException as exc:
        # MLflow says RESOURCE_DOES_NOT_EXIST both for a run it lacks (a typo, a run of another store) and for a path
        # a run lacks; the first is said plainly, as a job's error reaches its user, the second keeps MLflow's words
        if exc.error_code == "RESOURCE_DOES_NOT_EXIST" and not run_exists(run_id):
            raise ValueError(f"run {run_id} was not found in MLflow") from exc
        raise


def _run_of_registered(uri: str) -> str:
    if get_settings().offline_runs is not None:
        raise ValueError(f"{uri}: the model registry needs MLflow; with SDHRNET_OFFLINE_RUNS pass a run id or a folder")
    from registry.store import run_of_model_uri

    return run_of_model_uri(uri)


def resolve_model_dir(uri: str | Path) -> Path:
    text = str(uri)
    path = Path(text)
    if path.is_dir():
        if not (path / "model_card.json").exists():
            raise ValueError(f"{path} has no model_card.json; pass a folder written by a training run")
        return path
    if path.suffix == ".onnx":
        if not path.exists():
            raise ValueError(f"model file {path} does not exist")
        return resolve_model_dir(path.parent)
    if text.startswith(RUNS_URI):
        run_id, _, sub = text[len(RUNS_URI):].partition("/")
        return _download_run_files(run_id, sub or MODEL_FILES)
    if text.startswith("models:/"):
        return _download_run_files(_run_of_registered(text))
    if RUN_ID.match(text):
        return _download_run_files(text)
    raise ValueError(f"cannot find model {text!r}: pass a model folder, an .onnx file, an MLflow run id, runs:/ID or models:/NAME@ALIAS")

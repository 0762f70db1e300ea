"""Resolve what users pass as --model / --teacher / --from-slim to a local model folder.

Accepted: a model folder, an .onnx file inside one, an MLflow run id or `runs:/<id>`, and
`models:/<name>/<version>` or `models:/<name>@<alias>` from the registry. Run files are downloaded into the
registry's cache (registry.cache) and registered names resolved by the registry (registry.store). With
SDHRNET_OFFLINE_RUNS set, run ids and `runs:/` are looked up in that folder (trainer.offline_runs) and the registry
is out of reach (nothing imports mlflow then).

The folder's card and ONNX graph are read here too, and the folders that soups, ensembles and INT8 copies are
written into are made here, each failing with a ValueError its user can act on; nothing here imports torch, so
`sdhrnet align` can use it where torch is not installed.
"""
from __future__ import annotations

from pathlib import Path

from landmarks.jsonsafe import read_json_object

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
    from registry.store import ModelNotFound, run_of_model_uri

    try:
        return run_of_model_uri(uri)
    except ModelNotFound as exc:  # a LookupError: the commands and jobs that resolve --model report ValueErrors
        raise ValueError(str(exc)) from None


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


def read_card(folder: str | Path) -> dict:
    """The model card of a model folder; a ValueError naming the file when it is missing or not a JSON object."""
    path = Path(folder) / "model_card.json"
    if not path.exists():
        raise ValueError(f"{folder} is not a model folder: model_card.json is missing")
    return read_json_object(path, "a model card (a JSON object)")


def not_an_onnx_model(path: str | Path, why: str) -> ValueError:
    return ValueError(f"{path} is not an ONNX model that can be loaded ({why}); pass a model folder written by "
                      "a training run or `sdhrnet export`")


def load_onnx(path: str | Path, **kwargs):
    """onnx.load(path, **kwargs) of a file that must hold a network (one input at least and one output)."""
    import onnx
    from google.protobuf.message import DecodeError

    try:
        model = onnx.load(str(path), **kwargs)
    except DecodeError:
        raise not_an_onnx_model(path, "its protobuf cannot be parsed") from None
    # an empty file parses as an empty model
    if not (model.graph.node and model.graph.input and model.graph.output):
        raise not_an_onnx_model(path, "it holds no graph")
    return model


def make_model_folder(out: str | Path, sources=()) -> Path:
    """`out` made to receive a model folder built from the model folders `sources`; a ValueError says why it cannot.
    A source is refused: writing into it would replace the model it is made from before that is done."""
    out = Path(out)
    for source in sources:
        if out.resolve() == Path(source).resolve():
            raise ValueError(f"cannot write into {out}: it holds a model the new one is made from; pick another "
                             "folder")
    if out.exists() and not out.is_dir():
        raise ValueError(f"cannot write the model folder {out}: a file of that name exists")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ValueError(f"cannot make the model folder {out}: {exc.strerror or exc}") from None
    return out

"""Local copies of MLflow artifacts: registered versions (what the API serves) and runs' model folders (what
`--model`, `--teacher` and `--from-slim` name), one folder per version or per run and artifact path.

Neither changes once written, so a folder that was completely downloaded is reused for ever; downloads go to a
temporary sibling first and are renamed into place, so a crash or two processes fetching at once never leave a
half-written model behind."""
import os
import shutil
import tempfile
from pathlib import Path

from sdhrnet.settings import get_settings

from .tracking import client, mlflow

# remote path inside the logged model -> local file name; the weights stay remote (serving needs ONNX only)
SERVING_FILES = {"model.onnx": "model.onnx", "extra_files/model_card.json": "model_card.json",
                 "extra_files/spec.json": "spec.json"}
REQUIRED = {"model.onnx"}
COMPLETE = ".complete"


def fetch_version(name: str, version: str, cache_dir: Path, tracking_uri: str) -> Path:
    target = Path(cache_dir) / name / str(version)
    if (target / COMPLETE).exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{version}-"))
    try:
        for remote, local in SERVING_FILES.items():
            try:
                got = mlflow.artifacts.download_artifacts(
                    artifact_uri=f"models:/{name}/{version}/{remote}", dst_path=str(staging / ".dl"),
                    tracking_uri=tracking_uri)
            except Exception:
                if local in REQUIRED:
                    raise
                continue
            os.replace(got, staging / local)
        shutil.rmtree(staging / ".dl", ignore_errors=True)
        _publish(staging, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def fetch_run_files(run_id: str, artifact_path: str, cache_dir: Path | None = None,
                    tracking_uri: str | None = None) -> Path:
    """A run's artifact folder (`model_files`, `models/s1`, ...); by default under SDHRNET_HOME/cache."""
    target = Path(cache_dir or get_settings().home / "cache") / run_id / artifact_path
    if (target / COMPLETE).exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}-"))
    try:
        got = Path(client(tracking_uri).download_artifacts(run_id, artifact_path, str(staging)))
        _publish(got, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def _publish(folder: Path, target: Path) -> None:
    """Mark a downloaded folder complete and rename it to `target`, unless another process got there first."""
    (folder / COMPLETE).write_text("")
    try:
        os.replace(folder, target)
    except OSError:
        if not (target / COMPLETE).exists():  # a stale partial folder from an old crash
            shutil.rmtree(target, ignore_errors=True)
            os.replace(folder, target)

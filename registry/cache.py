"""Local copies of registered versions, one folder per name/version.

A version's files never change once registered, so a folder that was completely downloaded is reused
for ever; downloads go to a temporary sibling first and are renamed into place, so a crash or two
API processes fetching at once never leave a half-written model behind."""
import os
import shutil
import tempfile
from pathlib import Path

import mlflow

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
        (staging / COMPLETE).write_text("")
        try:
            os.replace(staging, target)
        except OSError:
            if not (target / COMPLETE).exists():  # a stale partial folder from an old crash
                shutil.rmtree(target, ignore_errors=True)
                os.replace(staging, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target

"""Training runs recorded in a folder instead of MLflow, for machines that have PyTorch but no MLflow (a GPU node
without a package index). Set SDHRNET_OFFLINE_RUNS=FOLDER; `sdhrnet import-runs FOLDER` logs the runs into
MLflow afterwards (trainer.import_runs). Nothing here imports mlflow.

One folder per run, named by its run id (32 hex digits, like an MLflow run id, so `--model <run id>` and
`runs:/<id>/<path>` resolve here too):

    FOLDER/<run id>/run.json       name, dataset, status, start and end time (ms), tags, params
    FOLDER/<run id>/metrics.jsonl  one {"key", "value", "step", "timestamp"} per line, appended as logged
    FOLDER/<run id>/artifacts/     the artifact tree MLflow would hold (model_files/, plots/, models/s1/ ...)

A run is found again by its resume key with MLflow's rule (trainer.run_tags), so a repeated command resumes an
unfinished run from its checkpoint and returns a finished one without training.
"""
from __future__ import annotations

import json
import os
import shutil
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from landmarks.jsonsafe import read_json_object
from trainer.run_tags import DATASET_TAG, FINISHED, KIND_TAG, RESUMABLE, RESUME_TAG, RUN_NAME_TAG, fresh_params

RUN_FILE = "run.json"
METRICS_FILE = "metrics.jsonl"
ARTIFACTS = "artifacts"


def _now_ms() -> int:
    return int(time.time() * 1000)


def _write_json(path: Path, obj: Any) -> None:
    # a reader in another process (the pipeline's progress lines, an import) never sees half a file
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(obj, indent=1))
    os.replace(tmp, path)


@dataclass(frozen=True)
class OfflineRun:
    """A run as stored: read-only view used by the tracker, the pipeline's progress lines and the import."""
    folder: Path

    @property
    def run_id(self) -> str:
        return self.folder.name

    @property
    def info(self) -> dict[str, Any]:
        return read_json_object(self.folder / RUN_FILE, "a run record (a JSON object)")

    @property
    def artifacts(self) -> Path:
        return self.folder / ARTIFACTS

    def metrics(self) -> list[dict[str, Any]]:
        """Every logged value in logging order (a metric logged at several steps appears once per step)."""
        path = self.folder / METRICS_FILE
        if not path.exists():
            return []
        lines = path.read_text().splitlines()
        # the last line can be cut short by a crash mid-write; everything before it is whole
        return [json.loads(line) for line in lines[:-1] if line] + _parsed_or_none(lines[-1:])

    def latest_metrics(self) -> dict[str, float]:
        """Each metric's value at its highest step (MLflow's 'latest' view)."""
        latest: dict[str, dict[str, Any]] = {}
        for m in self.metrics():
            if m["key"] not in latest or m["step"] >= latest[m["key"]]["step"]:
                latest[m["key"]] = m
        return {k: m["value"] for k, m in latest.items()}


def _parsed_or_none(lines: list[str]) -> list[dict[str, Any]]:
    try:
        return [json.loads(line) for line in lines if line]
    except json.JSONDecodeError:
        return []


def list_runs(root: Path) -> list[OfflineRun]:
    """Every run under `root`, oldest first."""
    root = Path(root)
    runs = [OfflineRun(p.parent) for p in root.glob(f"*/{RUN_FILE}")] if root.is_dir() else []
    return sorted(runs, key=lambda r: (r.info["start_time"], r.run_id))


def find_runs(root: Path, resume_key: str, dataset: str | None = None) -> list[OfflineRun]:
    """Runs with this resume key (within `dataset` when given, as MLflow searches one experiment), newest first."""
    found = [r for r in list_runs(root) if r.info["tags"].get(RESUME_TAG) == resume_key
             and (dataset is None or r.info["tags"].get(DATASET_TAG) == dataset)]
    return found[::-1]


def run_files(root: Path, run_id: str, artifact_path: str) -> Path:
    """The local folder of a run's artifact path (`model_files`, `models/s1`, ...)."""
    folder = Path(root) / run_id / ARTIFACTS / artifact_path
    if not (Path(root) / run_id / RUN_FILE).exists():
        raise ValueError(f"no offline run {run_id} under {root} (SDHRNET_OFFLINE_RUNS)")
    if not folder.exists():
        raise ValueError(f"offline run {run_id} has no artifact {artifact_path!r} (under {folder.parent})")
    return folder


class OfflineTracker:
    """The same interface as trainer.tracking.Tracker, writing to a run folder."""

    def __init__(self, folder: Path):
        self.run = OfflineRun(Path(folder))
        self.run_id = self.run.run_id

    @classmethod
    def open(cls, root: Path, kind: str, dataset: str, resume_key: str, run_name: str,
             tags: dict[str, str]) -> tuple["OfflineTracker", str]:
        """Return the tracker and the state of the run it found: 'new', 'resumed' (unfinished) or 'finished'."""
        for run in find_runs(root, resume_key, dataset):
            status = run.info["status"]
            if status == FINISHED:
                return cls(run.folder), "finished"
            if status in RESUMABLE:
                tracker = cls(run.folder)
                tracker._update(status="RUNNING", end_time=None)
                return tracker, "resumed"
        folder = Path(root) / uuid.uuid4().hex
        folder.mkdir(parents=True)
        all_tags = {RESUME_TAG: resume_key, KIND_TAG: kind, DATASET_TAG: dataset, RUN_NAME_TAG: run_name,
                    **{k: str(v) for k, v in tags.items()}}
        _write_json(folder / RUN_FILE, {"run_name": run_name, "dataset": dataset, "status": "RUNNING",
                                        "start_time": _now_ms(), "end_time": None, "tags": all_tags, "params": {}})
        return cls(folder), "new"

    def _update(self, **fields: Any) -> None:
        info = self.run.info
        info.update(fields)
        _write_json(self.run.folder / RUN_FILE, info)

    def log_params(self, params: dict[str, Any]) -> None:
        info = self.run.info
        fresh = fresh_params(params, info["params"])
        if fresh:
            self._update(params={**info["params"], **fresh})

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        now = _now_ms()
        lines = "".join(json.dumps({"key": k, "value": float(v), "step": int(step), "timestamp": now}) + "\n"
                        for k, v in metrics.items())
        with open(self.run.folder / METRICS_FILE, "a") as f:
            f.write(lines)

    def set_tag(self, key: str, value: Any) -> None:
        self._update(tags={**self.run.info["tags"], key: str(value)})

    def _artifact_dir(self, artifact_path: str | None) -> Path:
        folder = self.run.artifacts / (artifact_path or "")
        folder.mkdir(parents=True, exist_ok=True)
        return folder

    def log_artifact(self, path: Path, artifact_path: str | None = None) -> None:
        shutil.copy2(path, self._artifact_dir(artifact_path) / Path(path).name)

    def log_artifacts(self, folder: Path, artifact_path: str | None = None) -> None:
        shutil.copytree(folder, self._artifact_dir(artifact_path), dirs_exist_ok=True)

    def log_json(self, obj: Any, artifact_file: str) -> None:
        parent = str(Path(artifact_file).parent)
        target = self._artifact_dir(None if parent == "." else parent) / Path(artifact_file).name
        target.write_text(json.dumps(obj, indent=2))

    def finish(self, status: str = FINISHED) -> None:
        self._update(status=status, end_time=_now_ms())

    def download(self, artifact_path: str, dst: Path) -> Path:
        """Copy an artifact (file or folder) to `dst`, as MLflow's download_artifacts does."""
        source = self.run.artifacts / artifact_path
        target = Path(dst) / artifact_path
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, target, dirs_exist_ok=True)
        else:
            shutil.copy2(source, target)
        return target

"""Where training runs are recorded: MLflow (trainer.tracking), or a folder when SDHRNET_OFFLINE_RUNS is set
(trainer.offline_runs). Callers go through here, so the offline path never imports mlflow."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from sdhrnet.settings import get_settings


class RunTracker(Protocol):
    """What a training stage logs through; trainer.tracking.Tracker and offline_runs.OfflineTracker both are one."""
    run_id: str

    def log_params(self, params: dict[str, Any]) -> None: ...
    def log_metrics(self, metrics: dict[str, float], step: int) -> None: ...
    def set_tag(self, key: str, value: Any) -> None: ...
    def log_artifact(self, path: Path, artifact_path: str | None = None) -> None: ...
    def log_artifacts(self, folder: Path, artifact_path: str | None = None) -> None: ...
    def log_json(self, obj: Any, artifact_file: str) -> None: ...
    def finish(self, status: str = "FINISHED") -> None: ...
    def download(self, artifact_path: str, dst: Path) -> Path: ...


@dataclass(frozen=True)
class Progress:
    """How far a run has got, for the pipeline's progress lines."""
    epochs: int
    epoch_seconds: dict[int, float]  # epoch -> seconds, for the epochs done
    val_nme: float | None


def offline_root() -> Path | None:
    return get_settings().offline_runs


def open_run(kind: str, dataset: str, resume_key: str, run_name: str, tags: dict[str, str]) -> tuple[RunTracker, str]:
    """The run with this resume key and its state: 'new', 'resumed' (unfinished) or 'finished'."""
    root = offline_root()
    if root is not None:
        from trainer.offline_runs import OfflineTracker
        return OfflineTracker.open(root, kind, dataset, resume_key, run_name, tags)
    from trainer.tracking import Tracker
    return Tracker.open(kind, dataset, resume_key, run_name, tags)


def prepare(dataset: str) -> None:
    """Create what concurrent stage processes would otherwise race to create (MLflow's experiment)."""
    if offline_root() is None:
        from registry.tracking import client, dataset_experiment
        dataset_experiment(client(), dataset)


def run_progress(resume_key: str) -> Progress | None:
    """The newest run with this resume key, in any dataset; None before it exists."""
    root = offline_root()
    if root is None:
        from trainer.tracking import run_progress as mlflow_progress
        return mlflow_progress(resume_key)
    from trainer.offline_runs import find_runs
    found = find_runs(root, resume_key)
    if not found:
        return None
    run = found[0]
    seconds = {m["step"]: m["value"] for m in run.metrics() if m["key"] == "epoch_seconds"}
    return Progress(int(run.info["params"].get("epochs", 0)), seconds, run.latest_metrics().get("val_nme"))

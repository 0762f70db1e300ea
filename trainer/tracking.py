"""MLflow tracking for training runs: one experiment per dataset, runs found again by their resume key. The client
and the experiments are the registry's (registry.tracking), so both create them by one rule."""
from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path
from typing import Any

# registry.tracking first: it switches MLflow's telemetry off before mlflow is imported
from registry.tracking import MlflowClient, client, dataset_experiment
from mlflow.entities import Metric, Param
from trainer.run_tags import DATASET_TAG, FINISHED, KIND_TAG, RESUMABLE, RESUME_TAG, RUN_NAME_TAG, fresh_params

# client, FINISHED and RESUME_TAG are passed on for bench/gpu_paper.py and the tests, which read runs through them
__all__ = ["FINISHED", "RESUME_TAG", "Tracker", "client", "run_progress"]


class Tracker:
    """A thin, explicit handle on one MLflow run (no global fluent state, safe inside worker processes)."""

    def __init__(self, c: MlflowClient, run_id: str):
        self.client = c
        self.run_id = run_id

    @classmethod
    def open(cls, kind: str, dataset: str, resume_key: str, run_name: str, tags: dict[str, str]) -> tuple["Tracker", str]:
        """Return the tracker and the state of the run it found: 'new', 'resumed' (unfinished) or 'finished'."""
        c = client()
        exp = dataset_experiment(c, dataset)
        found = c.search_runs([exp], filter_string=f"tags.`{RESUME_TAG}` = '{resume_key}'",
                              order_by=["attributes.start_time DESC"], max_results=5)
        for run in found:
            status = run.info.status
            if status == FINISHED:
                return cls(c, run.info.run_id), "finished"
            if status in RESUMABLE:
                c.update_run(run.info.run_id, status="RUNNING")
                return cls(c, run.info.run_id), "resumed"
        all_tags = {RESUME_TAG: resume_key, KIND_TAG: kind, DATASET_TAG: dataset, RUN_NAME_TAG: run_name, **tags}
        run = c.create_run(exp, run_name=run_name, tags=all_tags)
        return cls(c, run.info.run_id), "new"

    def log_params(self, params: dict[str, Any]) -> None:
        fresh = fresh_params(params, self.client.get_run(self.run_id).data.params)
        if fresh:
            self.client.log_batch(self.run_id, params=[Param(k, v) for k, v in fresh.items()])

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        now = int(time.time() * 1000)
        self.client.log_batch(self.run_id, metrics=[Metric(k, float(v), now, step) for k, v in metrics.items()])

    def set_tag(self, key: str, value: Any) -> None:
        self.client.set_tag(self.run_id, key, str(value))

    def log_artifact(self, path: Path, artifact_path: str | None = None) -> None:
        self.client.log_artifact(self.run_id, str(path), artifact_path)

    def log_artifacts(self, folder: Path, artifact_path: str | None = None) -> None:
        self.client.log_artifacts(self.run_id, str(folder), artifact_path)

    def log_json(self, obj: Any, artifact_file: str) -> None:
        with tempfile.TemporaryDirectory() as d:
            p = Path(d) / Path(artifact_file).name
            p.write_text(json.dumps(obj, indent=2))
            parent = str(Path(artifact_file).parent)
            self.log_artifact(p, None if parent == "." else parent)

    def finish(self, status: str = "FINISHED") -> None:
        self.client.set_terminated(self.run_id, status=status)

    def download(self, artifact_path: str, dst: Path) -> Path:
        dst.mkdir(parents=True, exist_ok=True)
        return Path(self.client.download_artifacts(self.run_id, artifact_path, str(dst)))


def run_progress(resume_key: str):
    """The newest run with this resume key in any experiment, as trainer.run_store.Progress; None if none yet."""
    from trainer.run_store import Progress

    c = client()
    exps = [e.experiment_id for e in c.search_experiments()]
    found = c.search_runs(exps, filter_string=f"tags.`{RESUME_TAG}` = '{resume_key}'", max_results=1,
                          order_by=["attributes.start_time DESC"]) if exps else []
    if not found:
        return None
    run = found[0]
    history = c.get_metric_history(run.info.run_id, "epoch_seconds")
    return Progress(int(run.data.params.get("epochs", 0)), {m.step: m.value for m in history},
                    run.data.metrics.get("val_nme"))

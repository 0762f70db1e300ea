"""Log the runs of an offline run folder (trainer.offline_runs) into this machine's MLflow store.

Each offline run becomes one MLflow run in its dataset's experiment with the same name, tags (the resume key
included, so `sdhrnet pipeline` and the train commands find it again by name), params, every metric at every
step with its timestamp, artifacts, start and end time and status. MLflow gives the run a new id; the offline id
is kept in the tag `sdhrnet.offline_run_id`, and references between runs (a distillation's `slim_run` and
`teacher_run`, `run_id` in the model cards) are rewritten to the MLflow ids.

Importing again adds nothing: a run already imported in the same state is skipped; one imported before it
finished (or changed since) is replaced.
"""
from __future__ import annotations

import logging
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from trainer.offline_runs import OfflineRun, list_runs
from trainer.run_tags import FINISHED, OFFLINE_ID_TAG, RESUMABLE
from registry.tracking import client, dataset_experiment

log = logging.getLogger(__name__)
# What the imported copy was made from; compared on the next import to decide skip or replace.
IMPORTED_STATE_TAG = "sdhrnet.imported_state"
BATCH = 500  # below MLflow's per-request limits (1000 metrics, 100 params per log_batch)


@dataclass(frozen=True)
class Imported:
    offline_id: str
    run_id: str
    run_name: str
    status: str
    action: str  # "imported", "replaced" or "skipped"


def _state(run: OfflineRun) -> str:
    info = run.info
    return f"{info['status']}:{info['end_time']}:{len(run.metrics())}"


def _translate(text: str, ids: dict[str, str]) -> str:
    for offline_id, run_id in ids.items():
        text = text.replace(offline_id, run_id)
    return text


def _log_artifacts(c, run_id: str, run: OfflineRun, ids: dict[str, str]) -> None:
    if not run.artifacts.is_dir():
        return
    with tempfile.TemporaryDirectory(prefix="sdhrnet-import-") as tmp:
        copy = Path(tmp) / "artifacts"
        shutil.copytree(run.artifacts, copy)
        for card in copy.rglob("*.json"):  # model cards and configs name the runs they came from
            text = card.read_text()
            translated = _translate(text, ids)
            if translated != text:
                card.write_text(translated)
        c.log_artifacts(run_id, str(copy))


def _import_one(c, run: OfflineRun, ids: dict[str, str]) -> str:
    from mlflow.entities import Metric, Param, RunTag

    info = run.info
    if info["status"] not in (FINISHED, "KILLED", *RESUMABLE):
        raise ValueError(f"offline run {run.run_id} has an unknown status {info['status']!r}")
    exp = dataset_experiment(c, info["dataset"])
    tags = {**info["tags"], OFFLINE_ID_TAG: run.run_id}
    created = c.create_run(exp, start_time=info["start_time"], run_name=info["run_name"], tags=tags)
    run_id = created.info.run_id
    ids = {**ids, run.run_id: run_id}  # a run's own card names it too
    params = [Param(k, _translate(v, ids)) for k, v in info["params"].items()]
    metrics = [Metric(m["key"], m["value"], m["timestamp"], m["step"]) for m in run.metrics()]
    for i in range(0, len(params), 100):
        c.log_batch(run_id, params=params[i:i + 100])
    for i in range(0, len(metrics), BATCH):
        c.log_batch(run_id, metrics=metrics[i:i + BATCH])
    _log_artifacts(c, run_id, run, ids)
    # no process is training an offline RUNNING run here: FAILED keeps it resumable without claiming it runs
    status = "FAILED" if info["status"] == "RUNNING" else info["status"]
    c.set_terminated(run_id, status=status, end_time=info["end_time"] or info["start_time"])
    # last, so that an import that stopped half-way is recognised as incomplete and replaced next time
    c.log_batch(run_id, tags=[RunTag(IMPORTED_STATE_TAG, _state(run))])
    return run_id


def import_runs(root: Path) -> list[Imported]:
    """Import every run under `root`, oldest first (a distillation after the runs it names)."""
    if not Path(root).is_dir():
        raise ValueError(f"{root} is not a folder of offline runs")
    runs = list_runs(root)
    c = client()
    ids: dict[str, str] = {}
    done: list[Imported] = []
    for run in runs:
        info = run.info
        exp = dataset_experiment(c, info["dataset"])
        existing = c.search_runs([exp], filter_string=f"tags.`{OFFLINE_ID_TAG}` = '{run.run_id}'",
                                 order_by=["attributes.start_time DESC"])
        if existing and existing[0].data.tags.get(IMPORTED_STATE_TAG) == _state(run):
            ids[run.run_id] = existing[0].info.run_id
            done.append(Imported(run.run_id, ids[run.run_id], info["run_name"], info["status"], "skipped"))
            continue
        for old in existing:  # an earlier, incomplete or out-of-date copy
            c.delete_run(old.info.run_id)
        ids[run.run_id] = _import_one(c, run, ids)
        if info["status"] != FINISHED:
            log.warning("offline run %s (%s) is %s; imported as it stands", run.run_id, info["run_name"], info["status"])
        done.append(Imported(run.run_id, ids[run.run_id], info["run_name"], info["status"],
                             "replaced" if existing else "imported"))
    return done

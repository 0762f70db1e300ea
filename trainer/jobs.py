"""Training jobs as functions: what the CLI and the Celery worker both call.

A job finds its run (in MLflow, or in the folder of SDHRNET_OFFLINE_RUNS: trainer.run_store) again by its resume
key (the job id, or the run name on the command line):
an unfinished run resumes from its checkpoint, a finished one returns its result without training again,
so a redelivered job or a repeated command never trains or registers twice.
"""
from __future__ import annotations

import logging
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

from landmarks.jsonsafe import to_jsonable
from sdhrnet.budgets import parse_budgets
from sdhrnet.job_kinds import supernet_run
from sdhrnet.settings import get_settings
from sdhrnet.train_config import make_config
from trainer.distill import distill_stage
from trainer.engine import JobCancelled, JobHooks, setup_torch
from trainer.evaluate import evaluate_items_file, evaluate_split
from trainer.leftovers import make_workdir, remove_leftovers
from trainer.model_uri import MODEL_FILES, read_card, resolve_model_dir
from trainer.run_store import open_run
from trainer.run_tags import CHECKPOINT_TAG, JOB_TAG
from trainer.slim import slim_stage
from trainer.stage import RunContext, StageOutput
from trainer.sweep import sweep_stage
from trainer.teacher import teacher_stage

__all__ = ["JobCancelled", "JobHooks", "JobResult", "run_slim", "run_distill", "run_teacher", "run_sweep", "run_evaluate"]
log = logging.getLogger(__name__)


@dataclass
class JobResult:
    run_id: str
    kind: str
    dataset: str
    num_landmarks: int
    input_size: int
    metrics: dict[str, Any]  # nme, fr, auc, split
    model_dir: Path
    params: int
    macs: int
    job_id: str | None = None
    card: dict[str, Any] = field(default_factory=dict)
    # further models of the same job to register, each with its own job_id (a sweep's other budgets)
    members: list["JobResult"] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["model_dir"] = str(self.model_dir)
        d["members"] = [m.to_json() for m in self.members]
        return d


def _require(params: dict[str, Any], key: str) -> Any:
    if params.get(key) in (None, ""):
        raise ValueError(f"missing job parameter {key!r}")
    return params[key]


def _result_from_card(run_id: str, kind: str, model_dir: Path, card: dict[str, Any], job_id: str | None) -> JobResult:
    return JobResult(run_id=run_id, kind=kind, dataset=card["dataset"], num_landmarks=card["num_landmarks"],
                     input_size=card["input_size"], metrics=card["metrics"], model_dir=model_dir,
                     params=card["params"], macs=card["macs"], job_id=job_id, card=card)


def _run(kind: str, params: dict[str, Any], hooks: JobHooks | None, body: Callable[[RunContext], StageOutput]) -> JobResult:
    hooks = hooks or JobHooks()
    dataset = _require(params, "dataset")
    data_root = Path(_require(params, "data_root")).expanduser()
    if not data_root.is_dir():
        raise ValueError(f"data_root {data_root} is not a folder (it must be visible to the process that trains)")
    preset = params.get("preset", "cpu")
    cfg = make_config(preset, dataset, params.get("overrides"), kind)
    run_name = params.get("run_name") or f"{kind}-{dataset}-{preset}"
    resume_key = hooks.job_id or run_name
    tags = {"sdhrnet.preset": preset}
    if hooks.job_id:
        tags[JOB_TAG] = hooks.job_id
    tracker, status = open_run(kind, dataset, resume_key, run_name, tags)
    if status == "finished":
        log.info("run %s (%s) already finished; returning its result", tracker.run_id, resume_key)
        model_dir = resolve_model_dir(f"runs:/{tracker.run_id}/{MODEL_FILES}")
        return _result_from_card(tracker.run_id, kind, model_dir, read_card(model_dir), hooks.job_id)
    remove_leftovers(get_settings().checkpoint_dir)
    checkpoint = get_settings().checkpoint_dir / tracker.run_id / "last.pt"
    tracker.set_tag(CHECKPOINT_TAG, checkpoint)
    tracker.log_params({"kind": kind, "dataset": dataset, "data_root": str(data_root), "preset": preset,
                        "device": params.get("device", "cpu"), **cfg.model_dump(),
                        **{k: v for k, v in params.items() if k in ("slim_run", "teacher_run")}})
    hooks.progress({"stage": kind, "run_id": tracker.run_id, "epoch": 0, "epochs": cfg.epochs})
    workdir = make_workdir(kind)
    try:
        device = setup_torch(cfg, params.get("device") or get_settings().device)
        ctx = RunContext(kind, dataset, data_root, cfg, tracker, hooks, device, checkpoint, params, workdir)
        out = body(ctx)
        tracker.log_artifacts(out.model_dir, MODEL_FILES)
        tracker.finish("FINISHED")
    except JobCancelled:
        tracker.finish("KILLED")
        shutil.rmtree(workdir, ignore_errors=True)
        shutil.rmtree(checkpoint.parent, ignore_errors=True)  # a cancelled run is not resumed
        raise
    except BaseException:
        # FAILED runs are resumed by the next attempt with the same key; the checkpoint stays
        tracker.finish("FAILED")
        shutil.rmtree(workdir, ignore_errors=True)
        raise
    shutil.rmtree(checkpoint.parent, ignore_errors=True)
    # the result points at the run's copy, so the temporary folder can go
    model_dir = resolve_model_dir(f"runs:/{tracker.run_id}/{MODEL_FILES}")
    shutil.rmtree(workdir, ignore_errors=True)
    return _result_from_card(tracker.run_id, kind, model_dir, out.card, hooks.job_id)


def run_slim(params: dict[str, Any], hooks: JobHooks | None = None) -> JobResult:
    return _run("slim", params, hooks, slim_stage)


def run_teacher(params: dict[str, Any], hooks: JobHooks | None = None) -> JobResult:
    return _run("teacher", params, hooks, teacher_stage)


def run_distill(params: dict[str, Any], hooks: JobHooks | None = None) -> JobResult:
    _require(params, "slim_run")
    return _run("distill", params, hooks, distill_stage)


def run_sweep(params: dict[str, Any], hooks: JobHooks | None = None) -> JobResult:
    """Prune a slim run's supernet at each of params["budgets"] ("params=800000", "macs=...", "ms=..."),
    fine-tune and score each network; the result is the most accurate one (trainer.sweep)."""
    # checked before a run exists, so that a typo leaves no FAILED run behind
    supernet_run(_require(params, "slim_run"))
    parse_budgets(params.get("budgets"))
    result = _run("sweep", params, hooks, sweep_stage)
    for row in result.card.get("sweep", []):
        if row["label"] == result.card.get("budget"):
            continue  # the job's own model
        model_dir = resolve_model_dir(f"runs:/{result.run_id}/models/{row['label']}")
        job_id = f"{result.job_id}.{row['label']}" if result.job_id else None
        result.members.append(_result_from_card(result.run_id, "sweep", model_dir, read_card(model_dir), job_id))
    return result


def run_evaluate(params: dict[str, Any], hooks: JobHooks | None = None) -> dict[str, Any]:
    """Score a model (folder, .onnx, run id or models:/ URI) through the served ONNX path on a split (`data_root`,
    `split`) or on the items file /evaluate kept (`items`); `recrop` as evaluate_split's (absent: one pass, the
    benchmark protocol; null: the passes /align runs on a box sent)."""
    hooks = hooks or JobHooks()
    model = str(_require(params, "model"))
    hooks.progress({"stage": "evaluate", "model": model})
    recrop = params.get("recrop", False)
    if recrop not in (True, False, None):
        raise ValueError(f"recrop must be true, false or null, got {recrop!r}")
    options = {"model": model, "flip_test": bool(params.get("flip_test", False)), "recrop": recrop}
    if params.get("items"):
        report = evaluate_items_file(_require(params, "dataset"), Path(params["items"]), **options)
    else:
        report = evaluate_split(_require(params, "dataset"), Path(_require(params, "data_root")), params.get("split"),
                                **options)
    if params.get("model_ref"):  # started by /evaluate: the result reads as its inline report (no worker paths)
        report.pop("onnx", None)
        report["model"] = params["model_ref"]
    return to_jsonable(report)

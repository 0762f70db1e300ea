"""A stand-in for trainer.jobs with the same contract, for the worker tests (tests/fake_worker.py names it in the
Celery configuration).

It behaves like the real pipeline where the worker can tell: one MLflow run per job found again through
the `sdhrnet.job_id` tag, a checkpoint after every step so a redelivered job resumes, progress per step,
cooperative cancel between steps (run ends KILLED), a finished run returns its result without training.
The training itself is a sleep; `overrides` choose the steps, step time and the NME of the result."""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from sdhrnet.settings import get_settings
from trainer.jobs import JobCancelled, JobHooks, JobResult  # the real contract; only the training is faked

JOB_TAG = "sdhrnet.job_id"




def _client_and_experiment(dataset: str):
    from registry.tracking import client, dataset_experiment

    c = client()
    return c, dataset_experiment(c, dataset)


def _result(run_id: str, model_dir: Path, job_id: str | None) -> JobResult:
    card = json.loads((model_dir / "model_card.json").read_text())
    return JobResult(run_id=run_id, kind="slim", dataset=card["dataset"], num_landmarks=card["num_landmarks"],
                     input_size=card["input_size"], metrics=card["metrics"], model_dir=model_dir,
                     params=card["params"], macs=card["macs"], job_id=job_id, card=card)


def run_slim(params: dict[str, Any], hooks: JobHooks | None = None) -> JobResult:
    hooks = hooks or JobHooks()
    over = params.get("overrides") or {}
    steps, step_seconds = int(over.get("steps", 6)), float(over.get("step_seconds", 0.2))
    dataset = params["dataset"]
    client, experiment = _client_and_experiment(dataset)
    key = hooks.job_id or params.get("run_name") or "fake"
    found = client.search_runs([experiment], filter_string=f"tags.`{JOB_TAG}` = '{key}'")
    run = found[0] if found else client.create_run(experiment, run_name=f"fake-slim-{key[:8]}",
                                                   tags={JOB_TAG: key, "sdhrnet.kind": "slim"})
    run_id = run.info.run_id
    if run.info.status == "FINISHED":
        local = Path(client.download_artifacts(run_id, "model_files", str(get_settings().home / "dl" / run_id)))
        return _result(run_id, local, hooks.job_id)
    client.update_run(run_id, status="RUNNING")
    checkpoint = get_settings().checkpoint_dir / run_id / "step.json"
    start = json.loads(checkpoint.read_text())["step"] if checkpoint.exists() else 0
    if start:
        client.set_tag(run_id, "fake.resumed_from_step", str(start))
    hooks.progress({"stage": "slim", "run_id": run_id, "epoch": 0, "epochs": 1})
    try:
        for step in range(start, steps):
            if hooks.should_cancel():
                raise JobCancelled(f"cancelled at step {step}")
            time.sleep(step_seconds)
            checkpoint.parent.mkdir(parents=True, exist_ok=True)
            checkpoint.write_text(json.dumps({"step": step + 1}))
            hooks.progress({"stage": "slim", "run_id": run_id, "epoch": 1, "epochs": 1, "step": step + 1,
                            "steps": steps, "losses": {"mse": 1.0 / (step + 1)}, "best_nme": None})
    except JobCancelled:
        client.set_terminated(run_id, status="KILLED")
        raise
    from tests.service_support import build_tiny_model

    model_dir = get_settings().home / "fake_models" / run_id
    build_tiny_model(model_dir, dataset=dataset, nme=float(over.get("nme", 0.1)), split=over.get("split", "dev"),
                     input_size=int(over.get("input_size", 32)), with_training_files=True)
    client.log_artifacts(run_id, str(model_dir), "model_files")
    client.log_metric(run_id, "nme", float(over.get("nme", 0.1)))
    client.set_terminated(run_id, status="FINISHED")
    return _result(run_id, model_dir, hooks.job_id)


run_distill = run_teacher = run_slim


def run_sweep(params: dict[str, Any], hooks: JobHooks | None = None) -> JobResult:
    """As the real sweep begins: the slim run's supernet fetched from MLflow (trainer.model_uri), then as run_slim."""
    from trainer.model_uri import resolve_model_dir
    from trainer.sweep import supernet_ref

    resolve_model_dir(supernet_ref(params["slim_run"]))
    return run_slim(params, hooks)


def run_evaluate(params: dict[str, Any], hooks: JobHooks | None = None) -> dict[str, Any]:
    return {"n": 0, "nme": None}

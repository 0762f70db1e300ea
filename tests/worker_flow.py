"""The job flow the worker tests run against Redis + an MLflow server and against the embedded defaults.

A real worker process runs tiny slim jobs: the first reports progress, registers and becomes champion; a
worse one stays challenger; one is cancelled mid-run (CANCELLED, MLflow run KILLED, nothing registered);
one loses its worker to SIGKILL, is picked up by a restarted worker and registers exactly one version.

The jobs run trainer.jobs' tiny preset on $SDHRNET_TEST_DATA/300w (default ../shared/data/300w). SDHRNET_TEST_JOBS=fake runs them through
tests/fake_jobs.py instead (same contract, sleeps instead of training, NME chosen by the test): seconds
instead of minutes while working on the worker itself, and the fallback when the shared data is absent.
"""
from __future__ import annotations

import importlib.util
import os
import time
from pathlib import Path

from tests.data_location import data_root

REPO = Path(__file__).resolve().parents[1]
SHARED_300W = data_root() / "300w"
REAL = (os.environ.get("SDHRNET_TEST_JOBS", "real") != "fake" and SHARED_300W.is_dir()
        and importlib.util.find_spec("trainer.jobs") is not None)
FINAL = {"SUCCESS", "FAILURE", "CANCELLED", "REVOKED"}
JOBS_MODULE = None if REAL else "tests.fake_jobs"  # None: the real trainer


def worker_env(extra: dict) -> dict:
    env = {"SDHRNET_JOB_LEASE_SECONDS": "4", "SDHRNET_RECOVERY_INTERVAL": "1", "SDHRNET_PROGRESS_SECONDS": "0.2",
           "SDHRNET_THREADS": "1", "OMP_NUM_THREADS": "1", "SDHRNET_PROMOTION_POLICY": "better-nme"}
    env.update(extra)
    return env


def job_params(dataset: str, nme: float, steps: int = 4, step_seconds: float = 0.2) -> dict:
    if REAL:
        # 2 steps per epoch on 16 faces; more epochs keep a job running long enough to cancel or kill it
        overrides = {"max_train_samples": 16, "max_val_samples": 8, "epochs": 2}
        if steps > 8:
            overrides.update(epochs=3, checkpoint_every_steps=1)
        return {"dataset": "300w", "data_root": str(SHARED_300W), "preset": "tiny", "overrides": overrides}
    return {"dataset": dataset, "data_root": "/unused", "preset": "tiny",
            "overrides": {"nme": nme, "steps": steps, "step_seconds": step_seconds}}


def expected_aliases(dataset: str, model: dict, champion_before) -> list[str]:
    """What the better-nme policy must have done, given the champion before the job."""
    from registry import get_registry, model_name
    from registry.policy import decide
    from registry.store import model_version

    reg, name = get_registry(), model_name(dataset)

    def inputs(version):
        return reg.decision_inputs(name, model_version(reg.client, name, version))

    previous = None if champion_before is None else inputs(champion_before.version)
    promoted, _ = decide("better-nme", inputs(model["version"]), previous)
    return ["champion"] if promoted else ["challenger"]


def watch(job_id: str, timeout: float, until=None) -> tuple[dict, list[dict]]:
    """Poll the job until it ends (or `until(status)` holds); returns the last status and the progress seen."""
    from worker import job_status

    seen, deadline = [], time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = job_status(job_id)
        if status and status.get("progress"):
            seen.append(status["progress"])
        if status and (status["state"] in FINAL or (until and until(status))):
            return status, seen
        time.sleep(0.2)
    raise TimeoutError(f"job {job_id} still {status and status['state']} after {timeout}s; progress {seen[-3:]}")


def global_step(progress: dict) -> int:
    if not progress.get("step"):
        return 0
    return (max(progress.get("epoch") or 1, 1) - 1) * (progress.get("steps") or 0) + progress["step"]


def at_step(n: int):
    return lambda s: s["state"] == "PROGRESS" and global_step(s["progress"] or {}) >= n


def versions_of_job(dataset: str, job_id: str) -> list:
    from registry import get_registry, model_name

    reg = get_registry()
    return reg.client.search_model_versions(f"name = '{model_name(dataset)}' and tags.job_id = '{job_id}'")


def run_flow(tmp_path: Path, start_worker, env: dict, dataset: str) -> dict:
    from registry import get_registry
    from worker import request_cancel, submit

    dataset = "300w" if REAL else dataset
    timings = {}
    worker = start_worker(env, tmp_path / "worker.log", jobs_module=JOBS_MODULE)
    t0 = time.monotonic()

    # 1. a job reports progress, registers, and becomes champion (when none is better)
    before = get_registry().champion(dataset)
    first = submit("slim", job_params(dataset, nme=0.10))
    status, seen = watch(first, 300)
    assert status["state"] == "SUCCESS", (status, worker.tail())
    steps = [p for p in seen if p.get("step")]
    assert steps and {"stage", "epoch", "epochs", "step", "steps", "losses", "run_id"} <= set(steps[-1])
    result = status["result"]
    assert result["run_id"] == steps[-1]["run_id"]
    assert result["model"]["aliases"] == expected_aliases(dataset, result["model"], before)
    if before is None:
        assert result["model"]["aliases"] == ["champion"]
    timings["first job"] = time.monotonic() - t0

    # 2. a model that is not better stays challenger (the real tiny run is deterministic: equal NME)
    t0 = time.monotonic()
    before = get_registry().champion(dataset)
    second = submit("slim", job_params(dataset, nme=0.30))
    status, _ = watch(second, 300)
    assert status["state"] == "SUCCESS", (status, worker.tail())
    result = status["result"]
    assert result["model"]["aliases"] == expected_aliases(dataset, result["model"], before)
    if not REAL:
        assert result["model"]["aliases"] == ["challenger"]
    if result["model"]["aliases"] == ["challenger"]:
        assert get_registry().champion(dataset).version == before.version
    timings["second job (not better)"] = time.monotonic() - t0

    # 3. a running job is cancelled: CANCELLED, its run KILLED, nothing registered
    t0 = time.monotonic()
    third = submit("slim", job_params(dataset, nme=0.01, steps=200))
    queued = submit("slim", job_params(dataset, nme=0.01))  # waits behind `third` on the one worker
    assert request_cancel(queued)["state"] == "PENDING"
    status, _ = watch(third, 300, until=at_step(2))
    assert status["state"] == "PROGRESS", (status, worker.tail())
    assert request_cancel(third)["cancel_requested"] is True
    status, _ = watch(third, 120)
    assert status["state"] == "CANCELLED", (status, worker.tail())
    run_id = status["progress"]["run_id"]
    assert get_registry().client.get_run(run_id).info.status == "KILLED"
    assert versions_of_job(dataset, third) == []
    status, _ = watch(queued, 60)  # cancelled before it started: ends CANCELLED without training
    assert status["state"] == "CANCELLED" and not status["progress"].get("run_id"), status
    assert versions_of_job(dataset, queued) == []
    timings["cancelled job"] = time.monotonic() - t0

    # 4. the worker dies (SIGKILL) mid-job; a restarted worker resumes it and registers exactly once
    t0 = time.monotonic()
    fourth = submit("slim", job_params(dataset, nme=0.05, steps=30))
    status, _ = watch(fourth, 300, until=at_step(3))
    assert status["state"] == "PROGRESS", (status, worker.tail())
    run_before_kill = status["progress"]["run_id"]
    worker.kill()
    worker = start_worker(env, tmp_path / "worker-restarted.log", jobs_module=JOBS_MODULE)
    status, seen = watch(fourth, 300)
    assert status["state"] == "SUCCESS", (status, worker.tail())
    assert any(p.get("stage") == "requeued" for p in seen) or "re-queued" in worker.tail(400)
    assert status["result"]["run_id"] == run_before_kill  # the same MLflow run, resumed
    registered = versions_of_job(dataset, fourth)
    assert [str(v.version) for v in registered] == [status["result"]["model"]["version"]]
    if REAL:
        assert "resumed slim" in worker.tail(400), worker.tail()
    else:
        run = get_registry().client.get_run(status["result"]["run_id"])
        assert int(run.data.tags["fake.resumed_from_step"]) >= 3  # resumed, not restarted from scratch
        assert status["result"]["model"]["aliases"] == ["champion"]  # 0.05 beats 0.10
    timings["killed + recovered job"] = time.monotonic() - t0
    return timings

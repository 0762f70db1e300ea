"""What the API calls: submit a job, read its state and progress, ask it to stop, list recent jobs.

Needs only the broker and result backend (no torch, no trainer)."""
import time
import uuid

from sdhrnet.job_kinds import UnknownJobKind, job_kind  # noqa: F401  (UnknownJobKind: what submit raises)
from sdhrnet.job_kinds import failure_message
from worker.app import get_app
from worker.jobstore import job_store


def submit(kind: str, params: dict, job_id: str | None = None) -> str:
    spec = job_kind(kind)
    job_id = job_id or uuid.uuid4().hex
    # recorded before sending so that the job is known (PENDING) even while the worker is down
    job_store().record_submission(job_id, {"kind": spec.name, "params": params, "submitted_at": time.time()})
    get_app().send_task(spec.task, args=[params], task_id=job_id)
    return job_id


def job_status(job_id: str) -> dict | None:
    store = job_store()
    submission = store.submission(job_id)
    result = get_app().AsyncResult(job_id)
    state, info = result.state, result.info
    if submission is None and state == "PENDING":
        return None
    submission = submission or {}
    status = {"job_id": job_id, "kind": submission.get("kind"), "state": state,
              "submitted_at": submission.get("submitted_at"), "params": submission.get("params"),
              "cancel_requested": store.cancel_requested(job_id), "progress": None, "result": None,
              "error": None, "run_id": None}
    if state == "SUCCESS":
        status["result"] = info
    elif state == "FAILURE" or isinstance(info, BaseException):
        status["error"] = failure_message(info)
    elif isinstance(info, dict):
        status["progress"] = info
    if isinstance(info, dict):
        status["run_id"] = info.get("run_id")
        status["kind"] = status["kind"] or info.get("kind")
    return status


def request_cancel(job_id: str) -> dict | None:
    """Set the job's cancel flag: a queued job ends CANCELLED when a worker takes it, a running one at its
    next step. Returns the job's status (None for an unknown id)."""
    if job_status(job_id) is None:
        return None
    job_store().request_cancel(job_id)
    return job_status(job_id)


def list_jobs(limit: int = 50) -> list[dict]:
    jobs = []
    for job_id in job_store().recent_jobs(limit):
        status = job_status(job_id)
        if status is not None:
            jobs.append(status)
    return jobs

"""Celery tasks: thin wrappers around trainer.jobs.

Each task: skips a job that already ended (a message delivered twice), takes the job's lease (so that
two workers never train the same job at once), runs the trainer with hooks that publish PROGRESS and
read the cancel flag, then registers the model (idempotent per job id). A cancelled job ends in the
custom state CANCELLED with its MLflow run KILLED and nothing registered.
"""
from __future__ import annotations

import importlib
import logging
import threading
import time

from celery.exceptions import Ignore, TaskPredicate
from celery.signals import task_postrun

from landmarks.jsonsafe import to_jsonable
from sdhrnet.job_kinds import CANCELLED, FINAL_STATES, JOB_KINDS, JobFailed, JobKind, failure_message
from sdhrnet.settings import get_settings
from sdhrnet.uploads import remove_upload
from worker import recovery  # noqa: F401  (connects the orphan sweeper to worker start)
from worker.app import app
from worker.jobstore import job_store, lease_seconds, make_token

log = logging.getLogger("sdhrnet.worker")

PROGRESS = "PROGRESS"
REGISTRY_RETRIES = 5


def jobs_module(task):
    # the Celery configuration names the trainer (tests/fake_worker.py sets a stand-in with the same contract)
    return importlib.import_module(task.app.conf.get("sdhrnet_jobs_module") or "trainer.jobs")


class Lease:
    """The job's lease, refreshed by a heartbeat thread while the job runs."""

    def __init__(self, store, job_id: str):
        self.store, self.job_id, self.token = store, job_id, make_token()
        self.lost = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def acquire(self) -> bool:
        if not self.store.acquire_lease(self.job_id, self.token):
            return False
        self._thread = threading.Thread(target=self._beat, name=f"lease-{self.job_id}", daemon=True)
        self._thread.start()
        return True

    def _beat(self) -> None:
        while not self._stop.wait(max(0.5, lease_seconds() / 4)):
            try:
                if not self.store.refresh_lease(self.job_id, self.token):
                    log.error("job %s: lease lost (another worker took the job over); stopping", self.job_id)
                    self.lost = True
                    return
            except Exception:  # a broker hiccup: try again at the next beat, the lease has slack
                log.warning("job %s: lease refresh failed", self.job_id, exc_info=True)

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        try:
            self.store.release_lease(self.job_id, self.token)
        except Exception:
            log.warning("job %s: could not release the lease; it expires by itself", self.job_id, exc_info=True)


class Reporter:
    """JobHooks.progress: merges each update into the PROGRESS meta, written at most every second."""

    def __init__(self, task, job_id: str, kind: str):
        self.task = task
        self.meta: dict = {"kind": kind, "job_id": job_id}
        self._last_write = 0.0
        self.interval = get_settings().worker.progress_seconds

    def __call__(self, info: dict) -> None:
        info = to_jsonable(info or {})
        boundary = info.get("stage") != self.meta.get("stage") or info.get("step") in (None, info.get("steps"))
        self.meta = {**self.meta, **info, "updated_at": time.time()}
        if boundary or time.monotonic() - self._last_write >= self.interval:
            self.task.update_state(state=PROGRESS, meta=self.meta)
            self._last_write = time.monotonic()


_owned: dict[str, Lease] = {}  # job id -> lease held by this process
_uploads: dict[str, str] = {}  # job id -> the folder of its evaluation set (an evaluate job from /evaluate)


@task_postrun.connect
def _release_after_result_is_stored(task_id=None, task=None, **_):
    # after Celery stored the outcome: until then a dead worker's job must still look orphaned
    lease = _owned.pop(task_id, None)
    if lease is not None:
        lease.release()
        job_store().unmark_running(task_id)
    upload = _uploads.pop(task_id, None)
    # a job that will run again (a registry retry, a lease taken over) still needs its set
    if upload and task is not None and task.AsyncResult(task_id).state in FINAL_STATES:
        remove_upload(upload)


def _find_run_ids(job_id: str) -> list[str]:
    from registry.tracking import client as mlflow_client

    client = mlflow_client()
    experiments = [e.experiment_id for e in client.search_experiments()]
    if not experiments:
        return []
    runs = client.search_runs(experiments, filter_string=f"tags.`sdhrnet.job_id` = '{job_id}'")
    return [r.info.run_id for r in runs if r.info.status in ("RUNNING", "SCHEDULED", "FAILED")]


def _mark_killed(run_id: str | None, job_id: str) -> None:
    from registry.tracking import client as mlflow_client

    client = mlflow_client()
    run_ids = [run_id] if run_id else []
    try:
        run_ids += [r for r in _find_run_ids(job_id) if r not in run_ids]
        for rid in run_ids:
            if client.get_run(rid).info.status != "FINISHED":
                client.set_terminated(rid, status="KILLED")
    except Exception:
        log.warning("job %s: could not mark its MLflow run KILLED", job_id, exc_info=True)


def _end_cancelled(task, reporter: Reporter, job_id: str):
    run_id = reporter.meta.get("run_id")
    _mark_killed(run_id, job_id)
    meta = {**reporter.meta, "stage": "cancelled", "cancelled_at": time.time()}
    task.update_state(state=CANCELLED, meta=meta)
    log.info("job %s cancelled (run %s marked KILLED)", job_id, run_id)
    raise Ignore()  # keep CANCELLED: Celery would otherwise overwrite it with SUCCESS


def run_job(task, kind: str, params: dict):
    job_id = task.request.id
    store = job_store()
    state = task.AsyncResult(job_id).state
    if state in FINAL_STATES:
        log.warning("job %s already ended (%s); ignoring a repeated delivery", job_id, state)
        raise Ignore()
    lease = Lease(store, job_id)
    if not lease.acquire():
        log.warning("job %s is running on another worker; ignoring this delivery", job_id)
        raise Ignore()
    _owned[job_id] = lease
    if params.get("upload"):
        _uploads[job_id] = params["upload"]
    store.mark_running(job_id, {"task": task.name, "kind": kind, "params": params, "started_at": time.time(),
                                "worker": lease.token})
    reporter = Reporter(task, job_id, kind)
    if store.cancel_requested(job_id):
        _end_cancelled(task, reporter, job_id)
    reporter({"stage": "starting"})
    jobs = jobs_module(task)
    hooks = jobs.JobHooks(job_id=job_id, progress=reporter,
                          should_cancel=lambda: lease.lost or store.cancel_requested(job_id))
    try:
        result = getattr(jobs, JOB_KINDS[kind].runner)(dict(params), hooks)
    except jobs.JobCancelled:
        if lease.lost:
            raise Ignore()  # the job lives on in the worker that took it over
        _end_cancelled(task, reporter, job_id)
    if not JOB_KINDS[kind].registers:
        return to_jsonable(result)
    # from here on the job is no longer cancellable: a model is either fully registered or not at all
    reporter({"stage": "registering"})
    import registry
    try:
        version = registry.register_result(result, job_id)
        model = registry.get_registry().describe(result.dataset, version)
        members = [registry.get_registry().describe(m.dataset, registry.register_result(m, m.job_id))
                   for m in result.members]
    except registry.RegistryError:
        raise  # the model folder itself is wrong: retrying cannot help
    except Exception as exc:
        if task.request.retries >= REGISTRY_RETRIES:
            raise
        log.warning("job %s: registering failed (%s); retrying", job_id, exc)
        raise task.retry(exc=exc, countdown=min(60, 5 * 2 ** task.request.retries))
    return to_jsonable({
        "kind": kind, "job_id": job_id, "run_id": result.run_id, "dataset": result.dataset,
        "metrics": result.metrics, "params": result.params, "macs": result.macs,
        "model": {"name": model["name"], "version": model["version"], "aliases": model["aliases"],
                  "decision": model["decision"]},
        **({"members": [{"version": m["version"], "budget": m["budget"], "nme": m["metrics"]["nme"],
                         "params": m["params"], "macs": m["macs"], "ms": m["ms"]} for m in members]}
           if members else {}),
    })


def _define_task(kind: JobKind):
    def task(self, params: dict):
        try:
            return run_job(self, kind.name, params)
        except TaskPredicate:  # Ignore, Retry, Reject: Celery's flow, not a failure
            raise
        except Exception as exc:
            # Celery stores a failure as its type's import path and its arguments, and the API rebuilds it from
            # them: for a type whose constructor takes other arguments (MLflow's RestException) that came out as
            # "Exception: <class '...'>([...])". The job's error is the message alone; this log keeps the rest.
            log.error("job %s (%s) failed", self.request.id, kind.name, exc_info=True)
            raise JobFailed(failure_message(exc)) from None

    task.__name__ = task.__qualname__ = kind.name
    return app.task(bind=True, name=kind.task, max_retries=REGISTRY_RETRIES)(task)


TASKS = {name: _define_task(kind) for name, kind in JOB_KINDS.items()}

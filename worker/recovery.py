"""Re-queue jobs whose worker died (SIGKILL, OOM, a lost node).

A running job holds a lease that its worker refreshes; when the lease has expired but the job is still
recorded as running and has no final state, any worker re-sends it under the same task id. The trainer
finds its MLflow run again through the job id and resumes from the checkpoint; registration is idempotent.
This is what recovers jobs on the filesystem broker, which deletes a message as soon as it hands it out,
and it is faster than waiting for Redis's visibility timeout (48 h by default, the backstop)."""
import logging
import threading
import time

from celery.signals import worker_ready, worker_shutdown

from sdhrnet.job_kinds import FINAL_STATES
from sdhrnet.settings import get_settings
from worker.jobstore import job_store

log = logging.getLogger("sdhrnet.worker.recovery")
_stop = threading.Event()


def sweep_interval() -> float:
    return get_settings().worker.recovery_interval


def sweep(app, store=None) -> list[str]:
    """Re-queue orphaned jobs once; returns their ids."""
    store = store or job_store()
    requeued = []
    for job_id, record in store.running().items():
        if store.lease_alive(job_id):
            continue
        result = app.AsyncResult(job_id)
        if result.state in FINAL_STATES:
            store.unmark_running(job_id)  # its worker died after storing the outcome
            continue
        if not store.claim_recovery(job_id):
            continue
        app.send_task(record["task"], args=[record["params"]], task_id=job_id)
        meta = result.info if isinstance(result.info, dict) else {}
        app.backend.store_result(job_id, {**meta, "stage": "requeued", "requeued_at": time.time(),
                                          "requeue_reason": "its worker stopped heartbeating"}, "PROGRESS")
        store.unmark_running(job_id)
        requeued.append(job_id)
        log.warning("job %s: its worker is gone; re-queued it (%s)", job_id, record["task"])
    return requeued


def _loop(app) -> None:
    while not _stop.is_set():
        try:
            sweep(app)
        except Exception:  # the broker may be restarting; the next sweep tries again
            log.warning("orphan sweep failed", exc_info=True)
        _stop.wait(sweep_interval())


@worker_ready.connect
def _start_sweeper(sender=None, **_):
    app = sender.app if sender is not None else None
    if app is None:
        from worker.app import app
    _stop.clear()
    threading.Thread(target=_loop, args=(app,), name="sdhrnet-orphan-sweeper", daemon=True).start()


@worker_shutdown.connect
def _stop_sweeper(**_):
    _stop.set()

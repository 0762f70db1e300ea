"""The job store beside the broker (cancel flags, leases, running records, job index), in both modes:
files under SDHRNET_HOME for the embedded set-up and keys in a real Redis."""
import os
import subprocess
import sys
import time

import pytest

from worker.jobstore import FileJobStore, RedisJobStore

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(params=["files", "redis"])
def store(request, tmp_path, settings_env):
    settings_env(SDHRNET_JOB_LEASE_SECONDS=1)
    if request.param == "files":
        return FileJobStore(tmp_path / "jobs")
    return RedisJobStore(request.getfixturevalue("redis_url"))


def test_cancel_flag_and_index(store):
    job = f"job-{time.time_ns()}"
    assert store.submission(job) is None and not store.cancel_requested(job)
    store.record_submission(job, {"kind": "slim", "params": {"dataset": "300w"}, "submitted_at": time.time()})
    assert store.submission(job)["kind"] == "slim" and job in store.recent_jobs(10)
    store.request_cancel(job)
    assert store.cancel_requested(job)


def test_lease_is_exclusive_refreshable_and_expires(store):
    job = f"lease-{time.time_ns()}"
    assert store.acquire_lease(job, "a")
    assert not store.acquire_lease(job, "b") and store.lease_alive(job)
    assert not store.refresh_lease(job, "b") and store.refresh_lease(job, "a")
    store.release_lease(job, "b")  # not the holder: no effect
    assert store.lease_alive(job)
    time.sleep(1.3)  # the holder stopped heartbeating
    assert not store.lease_alive(job) and store.acquire_lease(job, "b")
    assert not store.refresh_lease(job, "a")  # the old holder learns it lost the job
    store.release_lease(job, "b")
    assert not store.lease_alive(job)


def test_running_records_and_single_recovery_claim(store):
    job = f"run-{time.time_ns()}"
    store.mark_running(job, {"task": "sdhrnet.slim", "params": {"x": 1}})
    assert store.running()[job]["params"] == {"x": 1}
    assert store.claim_recovery(job) and not store.claim_recovery(job)
    store.unmark_running(job)
    assert job not in store.running()


def test_file_lease_of_a_dead_process_is_free_at_once(tmp_path, settings_env):
    settings_env(SDHRNET_JOB_LEASE_SECONDS=600)
    code = ("import sys; from worker.jobstore import FileJobStore; "
            "assert FileJobStore(sys.argv[1]).acquire_lease('j', 'dead')")
    subprocess.run([sys.executable, "-c", code, str(tmp_path / "jobs")], check=True,
                   env={**os.environ, "SDHRNET_HOME": str(tmp_path)})
    store = FileJobStore(tmp_path / "jobs")
    assert not store.lease_alive("j") and store.acquire_lease("j", "alive")
    assert store.lease_alive("j")

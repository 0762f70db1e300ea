"""Job bookkeeping beside Celery's result backend, in the same place as the broker.

- the job index (what was submitted, when, with which parameters) so that `GET /jobs` and unknown ids work;
- the cooperative cancel flag, checked by the running job between steps;
- the lease a running job holds and refreshes (heartbeat), and the record of jobs that are running, which
  together let any worker re-queue a job whose worker died (see worker.recovery).

Redis mode keeps these in Redis keys; the embedded mode (filesystem broker) in files under
`$SDHRNET_HOME/jobs/`, serialised with a file lock, since everything then runs on one machine.
"""
from __future__ import annotations

import fcntl
import json
import os
import socket
import threading
import time
import uuid
from contextlib import contextmanager
from pathlib import Path

from sdhrnet.settings import get_settings

CANCEL_TTL = 30 * 24 * 3600

# POSIX record locks exclude other processes and are not inherited by forked children (an flock would be,
# and a child forked while the parent's sweeper held it would deadlock); threads of one process share them,
# so a thread lock goes on top, re-created in a forked child in case the fork happened while it was held.
_thread_lock = threading.Lock()


def _new_thread_lock() -> None:
    global _thread_lock
    _thread_lock = threading.Lock()


os.register_at_fork(after_in_child=_new_thread_lock)
INDEX_LIMIT = 1000


def lease_seconds() -> float:
    # a dead worker's job is re-queued this long after its last heartbeat
    return get_settings().worker.job_lease_seconds


def make_token() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class RedisJobStore:
    PREFIX = "sdhrnet:"

    def __init__(self, url: str):
        import redis

        self.r = redis.Redis.from_url(url, decode_responses=True, socket_timeout=10, health_check_interval=30)
        # compare-and-set on the lease: a worker must never extend or drop a lease another worker holds
        self._refresh = self.r.register_script(
            "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('pexpire', KEYS[1], ARGV[2]) "
            "else return 0 end")
        self._release = self.r.register_script(
            "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end")

    def _k(self, *parts: str) -> str:
        return self.PREFIX + ":".join(parts)

    # index
    def record_submission(self, job_id: str, record: dict) -> None:
        pipe = self.r.pipeline()
        pipe.set(self._k("job", job_id), json.dumps(record))
        pipe.zadd(self._k("jobs"), {job_id: record["submitted_at"]})
        pipe.zremrangebyrank(self._k("jobs"), 0, -INDEX_LIMIT - 1)
        pipe.execute()

    def submission(self, job_id: str) -> dict | None:
        raw = self.r.get(self._k("job", job_id))
        return json.loads(raw) if raw else None

    def recent_jobs(self, limit: int) -> list[str]:
        return list(self.r.zrevrange(self._k("jobs"), 0, limit - 1))

    # cancel
    def request_cancel(self, job_id: str) -> None:
        self.r.set(self._k("cancel", job_id), str(time.time()), ex=CANCEL_TTL)

    def cancel_requested(self, job_id: str) -> bool:
        return bool(self.r.exists(self._k("cancel", job_id)))

    # lease + running record
    def acquire_lease(self, job_id: str, token: str) -> bool:
        return bool(self.r.set(self._k("lease", job_id), token, nx=True, px=int(lease_seconds() * 1000)))

    def refresh_lease(self, job_id: str, token: str) -> bool:
        return bool(self._refresh(keys=[self._k("lease", job_id)], args=[token, int(lease_seconds() * 1000)]))

    def release_lease(self, job_id: str, token: str) -> None:
        self._release(keys=[self._k("lease", job_id)], args=[token])

    def lease_alive(self, job_id: str) -> bool:
        return bool(self.r.exists(self._k("lease", job_id)))

    def mark_running(self, job_id: str, record: dict) -> None:
        self.r.hset(self._k("running"), job_id, json.dumps(record))

    def unmark_running(self, job_id: str) -> None:
        self.r.hdel(self._k("running"), job_id)

    def running(self) -> dict[str, dict]:
        return {k: json.loads(v) for k, v in self.r.hgetall(self._k("running")).items()}

    def claim_recovery(self, job_id: str) -> bool:
        # two idle workers sweeping at once must not both re-queue the job
        return bool(self.r.set(self._k("recovering", job_id), "1", nx=True, px=int(lease_seconds() * 1000)))


class FileJobStore:
    def __init__(self, root: Path):
        self.root = Path(root)
        for sub in ("index", "cancel", "lease", "running"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)

    @contextmanager
    def _locked(self):
        with _thread_lock, open(self.root / ".lock", "a") as handle:
            fcntl.lockf(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.lockf(handle, fcntl.LOCK_UN)

    @staticmethod
    def _write(path: Path, data: dict) -> None:
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(data))
        os.replace(tmp, path)

    @staticmethod
    def _read(path: Path) -> dict | None:
        try:
            return json.loads(path.read_text())
        except (FileNotFoundError, ValueError):
            return None

    @staticmethod
    def _safe(job_id: str) -> str:
        if not job_id or "/" in job_id or job_id.startswith("."):
            raise ValueError(f"invalid job id {job_id!r}")
        return job_id

    # index
    def record_submission(self, job_id: str, record: dict) -> None:
        self._write(self.root / "index" / f"{self._safe(job_id)}.json", record)

    def submission(self, job_id: str) -> dict | None:
        return self._read(self.root / "index" / f"{self._safe(job_id)}.json")

    def recent_jobs(self, limit: int) -> list[str]:
        files = sorted((self.root / "index").glob("*.json"), key=lambda p: p.stat().st_mtime, reverse=True)
        return [p.stem for p in files[:limit]]

    # cancel
    def request_cancel(self, job_id: str) -> None:
        (self.root / "cancel" / self._safe(job_id)).write_text(str(time.time()))

    def cancel_requested(self, job_id: str) -> bool:
        return (self.root / "cancel" / self._safe(job_id)).exists()

    # lease + running record
    def _lease_path(self, job_id: str) -> Path:
        return self.root / "lease" / f"{self._safe(job_id)}.json"

    def _lease_fresh(self, path: Path) -> bool:
        lease = self._read(path)
        if lease is None:
            return False
        host, pid = lease.get("host"), int(lease.get("pid", 0))
        if host == socket.gethostname() and pid and not _pid_alive(pid):
            return False  # same machine, holder gone: no need to wait for the lease to expire
        return time.time() - path.stat().st_mtime < lease_seconds()

    def acquire_lease(self, job_id: str, token: str) -> bool:
        path = self._lease_path(job_id)
        with self._locked():
            if path.exists() and self._lease_fresh(path):
                return False
            self._write(path, {"token": token, "host": socket.gethostname(), "pid": os.getpid()})
            return True

    def refresh_lease(self, job_id: str, token: str) -> bool:
        path = self._lease_path(job_id)
        with self._locked():
            lease = self._read(path)
            if lease is None or lease.get("token") != token:
                return False
            os.utime(path)
            return True

    def release_lease(self, job_id: str, token: str) -> None:
        path = self._lease_path(job_id)
        with self._locked():
            lease = self._read(path)
            if lease is not None and lease.get("token") == token:
                path.unlink(missing_ok=True)

    def lease_alive(self, job_id: str) -> bool:
        path = self._lease_path(job_id)
        with self._locked():
            return path.exists() and self._lease_fresh(path)

    def mark_running(self, job_id: str, record: dict) -> None:
        self._write(self.root / "running" / f"{self._safe(job_id)}.json", record)

    def unmark_running(self, job_id: str) -> None:
        (self.root / "running" / f"{self._safe(job_id)}.json").unlink(missing_ok=True)

    def running(self) -> dict[str, dict]:
        out = {}
        for path in (self.root / "running").glob("*.json"):
            record = self._read(path)
            if record is not None:
                out[path.stem] = record
        return out

    def claim_recovery(self, job_id: str) -> bool:
        path = self.root / "lease" / f"{self._safe(job_id)}.recovering"
        with self._locked():
            if path.exists() and time.time() - path.stat().st_mtime < lease_seconds():
                return False
            path.write_text(str(os.getpid()))
            return True


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # a zombie is dead for our purpose (its parent has not reaped it yet)
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1][0] != "Z"
    except (OSError, IndexError):
        return True


_stores: dict[str, object] = {}


def job_store():
    settings = get_settings()
    key = settings.redis_url or str(settings.home.resolve())
    if key not in _stores:
        _stores[key] = RedisJobStore(settings.redis_url) if settings.redis_url else \
            FileJobStore(settings.home / "jobs")
    return _stores[key]

"""Real services for the integration tests (registered in tests/conftest.py as a pytest plugin).

- `redis_url`: a private redis-server on a free port with its own temp dir (falls back to 127.0.0.1:6379,
  database 15, when redis-server is not installed);
- `mlflow_server`: an `mlflow server` process with a SQLite backend and proxied artifacts, on a free port;
- `start_worker(...)` / `worker_factory`: a real `sdhrnet worker` subprocess with a given environment.
Everything started here is stopped at the end of its scope.
"""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(predicate, timeout: float, what: str, interval: float = 0.2):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")


def wait_api_ready(base: str, process: subprocess.Popen, log: Path, timeout: float, what: str,
                   interval: float = 0.3) -> None:
    """Wait until the API at `base` answers /readyz with 200; fail with the end of its log if its process dies."""
    import httpx

    def ready():
        assert process.poll() is None, log.read_text()[-3000:]
        try:
            return httpx.get(f"{base}/readyz", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False
    wait_until(ready, timeout, what, interval=interval)


def _stop(proc: subprocess.Popen, timeout: float = 15) -> None:
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)


def _tail(path: Path, n: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-n:])
    except FileNotFoundError:
        return "(no log)"


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory):
    server = shutil.which("redis-server")
    if server is None:
        import redis
        url = "redis://127.0.0.1:6379/15"
        try:
            redis.Redis.from_url(url).ping()
        except Exception as exc:
            pytest.skip(f"no redis-server binary and nothing answering on 127.0.0.1:6379 ({exc}); install redis")
        redis.Redis.from_url(url).flushdb()
        yield url
        return
    folder = tmp_path_factory.mktemp("redis")
    port = free_port()
    proc = subprocess.Popen([server, "--bind", "127.0.0.1", "--port", str(port), "--dir", str(folder),
                             "--save", "", "--appendonly", "no", "--protected-mode", "yes"],
                            stdout=open(folder / "redis.log", "wb"), stderr=subprocess.STDOUT,
                            start_new_session=True)
    url = f"redis://127.0.0.1:{port}/0"
    try:
        import redis

        def answers():
            try:
                return redis.Redis.from_url(url, socket_timeout=1).ping()
            except Exception:
                if proc.poll() is not None:
                    raise RuntimeError(f"redis-server exited: {_tail(folder / 'redis.log')}")
                return False
        wait_until(answers, 20, "redis-server")
        yield url
    finally:
        _stop(proc)


@dataclass
class MlflowServer:
    url: str
    process: subprocess.Popen
    folder: Path


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory):
    folder = tmp_path_factory.mktemp("mlflow-server")
    port = free_port()
    # the server's job runner (a huey consumer with 10 workers, for GenAI jobs) is of no use here and
    # would cost 8 processes on a 2-core machine
    env = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true",
           "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    env.pop("MLFLOW_TRACKING_URI", None)
    proc = subprocess.Popen(
        [str(BIN / "mlflow"), "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
         "--backend-store-uri", f"sqlite:///{folder / 'mlflow.db'}", "--serve-artifacts",
         "--artifacts-destination", str(folder / "artifacts")],
        cwd=folder, env=env, stdout=open(folder / "server.log", "wb"), stderr=subprocess.STDOUT,
        start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        def healthy():
            if proc.poll() is not None:
                raise RuntimeError(f"mlflow server exited:\n{_tail(folder / 'server.log')}")
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=2) as r:
                    return r.status == 200
            except OSError:
                return False
        wait_until(healthy, 120, "mlflow server /health", interval=0.5)
        yield MlflowServer(url, proc, folder)
    finally:
        _stop(proc)


@dataclass
class WorkerProcess:
    process: subprocess.Popen
    log: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def kill(self) -> None:
        """SIGKILL the whole process group, as an OOM killer or a lost node would."""
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> None:
        _stop(self.process, timeout=30)

    def tail(self, n: int = 60) -> str:
        return _tail(self.log, n)


def start_worker(env: dict, log: Path, pool: str = "solo", extra_args: tuple = (), ready_timeout: float = 90,
                 jobs_module: str | None = None) -> WorkerProcess:
    """Start `sdhrnet worker` with `env` layered over the current environment; returns once Celery says ready.
    `jobs_module` runs a stand-in trainer (tests/fake_jobs.py) instead of trainer.jobs."""
    full_env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
                "MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true", "PYTHONUNBUFFERED": "1", **env}
    full_env = {k: v for k, v in full_env.items() if v is not None}
    log.parent.mkdir(parents=True, exist_ok=True)
    offset = log.stat().st_size if log.exists() else 0  # a restarted worker may share the log
    cwd = Path(full_env.get("SDHRNET_HOME") or REPO)
    cwd.mkdir(parents=True, exist_ok=True)
    command = ([str(BIN / "python"), "-m", "tests.fake_worker", jobs_module] if jobs_module
               else [str(BIN / "sdhrnet"), "worker"])
    proc = subprocess.Popen([*command, "--pool", pool, "--loglevel", "INFO", *extra_args],
                            cwd=cwd, env=full_env,
                            stdout=open(log, "ab"), stderr=subprocess.STDOUT, start_new_session=True)
    worker = WorkerProcess(proc, log)

    def ready():
        if proc.poll() is not None:
            raise RuntimeError(f"worker exited with {proc.returncode}:\n{worker.tail()}")
        with open(log, "rb") as handle:
            handle.seek(offset)
            return b" ready." in handle.read()
    try:
        wait_until(ready, ready_timeout, "the worker to report ready", interval=0.3)
    except BaseException:
        worker.stop()
        raise
    return worker


@pytest.fixture
def worker_factory():
    """start(env, log, pool=...) -> WorkerProcess; every worker started is stopped after the test."""
    started: list[WorkerProcess] = []

    def start(env: dict, log: Path, **kwargs) -> WorkerProcess:
        worker = start_worker(env, log, **kwargs)
        started.append(worker)
        return worker
    yield start
    for worker in started:
        worker.stop()

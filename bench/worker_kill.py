"""What a worker SIGKILL costs under `sdhrnet run` (issue 12): the supervisor's restart, the API meanwhile, jobs.

Starts `sdhrnet run` (MLflow server, worker, API) on embedded defaults in a temporary SDHRNET_HOME with a tiny
default model, keeps /align busy (one request at a time) and polls /readyz, SIGKILLs the idle worker, and reports:
  - seconds from the SIGKILL to the supervisor's "restarted worker (pid N)" line and to the new worker's
    "ready" line (it takes tasks from then on),
  - the answer to a job submitted right after the kill (while no worker runs), and the seconds until that job
    has ended SUCCESS on the new worker: the new worker answers,
  - /align requests sent and failed from the kill until the new worker answered, their latency,
  - the /readyz answers over the same time.
The jobs are evaluate jobs (POST /evaluate with more items than SDHRNET_EVALUATE_SYNC_LIMIT): the real worker
code path, seconds long. A job running when its worker dies is picked up again after its lease
(SDHRNET_JOB_LEASE_SECONDS, 60): tests/worker_flow.py covers that.

    nice -n 10 .venv/bin/python bench/worker_kill.py [--keep]
"""
from __future__ import annotations

import argparse
import base64
import json
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
KEY = "bench-key"
BOX = [20, 10, 140, 110]
SYNC_LIMIT = 8  # /evaluate scores up to this many items inline; one more makes it a job


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http(method: str, url: str, body: dict | None = None, timeout: float = 10) -> tuple[int, dict | str]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method,
                                     headers={"X-API-Key": KEY, "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            status, text = response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        status, text = exc.code, exc.read().decode(errors="replace")
    except OSError as exc:  # refused, reset, timed out
        return 0, f"{type(exc).__name__}: {exc}"
    try:
        return status, json.loads(text)
    except ValueError:
        return status, text


class Load(threading.Thread):
    """/align one request after another, or /readyz every `pause` seconds; every answer with its time."""

    def __init__(self, url: str, body: dict | None, pause: float):
        super().__init__(daemon=True)
        self.url, self.body, self.pause = url, body, pause
        self.answers: list[tuple[float, float, int, str]] = []  # (sent at, seconds, status, what)
        self.stop = threading.Event()

    def run(self):
        while not self.stop.is_set():
            start = time.monotonic()
            status, body = http("POST" if self.body else "GET", self.url, self.body)
            what = body.get("status", "") if isinstance(body, dict) and isinstance(body.get("status"), str) else ""
            self.answers.append((start, time.monotonic() - start, status, what or str(body)[:80]))
            self.stop.wait(self.pause)

    def between(self, t0: float, t1: float):
        return [a for a in self.answers if t0 <= a[0] <= t1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--keep", action="store_true", help="keep the temporary SDHRNET_HOME (logs)")
    args = parser.parse_args()

    from tests.service_support import build_tiny_model, png_bytes
    from tests.services import wait_until

    tmp = Path(tempfile.mkdtemp(prefix="sdhrnet-worker-kill-"))
    home, model = tmp / "home", build_tiny_model(tmp / "default_model")
    port, mlflow_port = free_port(), free_port()
    env = {**os.environ, "SDHRNET_HOME": str(home), "SDHRNET_DEFAULT_MODEL_DIR": str(model),
           "SDHRNET_API_KEYS": KEY, "SDHRNET_EVALUATE_SYNC_LIMIT": str(SYNC_LIMIT), "PYTHONPATH": str(REPO),
           "MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true"}
    for name in ("MLFLOW_TRACKING_URI", "REDIS_URL", "SDHRNET_TRACKING_URI", "SDHRNET_REDIS_URL"):
        env.pop(name, None)
    log = tmp / "run.log"
    base = f"http://127.0.0.1:{port}"
    started = time.monotonic()
    run = subprocess.Popen([sys.executable, "-m", "sdhrnet.cli", "run", "--port", str(port), "--mlflow-port",
                            str(mlflow_port)], cwd=tmp, env=env, stdout=open(log, "wb"), stderr=subprocess.STDOUT)
    text = lambda: log.read_text(errors="replace")  # noqa: E731
    figures: dict = {}
    loads: list[Load] = []
    try:
        wait_until(lambda: run.poll() is not None or "Press Ctrl-C" in text(), 300, "sdhrnet run to come up", 0.5)
        assert run.poll() is None, text()[-3000:]
        wait_until(lambda: http("GET", f"{base}/readyz")[0] == 200, 120, "/readyz 200", 0.5)
        figures["start_up_s"] = round(time.monotonic() - started, 1)
        worker = int(re.search(r"started worker \(pid (\d+)\)", text()).group(1))

        # a job through the worker before the kill: the time a job takes when all is well
        image = base64.b64encode(png_bytes()).decode()
        item = {"image": image, "box": BOX, "landmarks": [[60.0 + i % 9, 50.0 + i // 9] for i in range(68)]}
        job = {"items": [dict(item, id=f"face-{i}") for i in range(SYNC_LIMIT + 1)]}

        def submit():
            status, accepted = http("POST", f"{base}/evaluate", job, timeout=30)
            return status, accepted.get("job_id") if isinstance(accepted, dict) else accepted

        def ended(job_id):
            status = http("GET", f"{base}/jobs/{job_id}")[1]
            state = status.get("state") if isinstance(status, dict) else None
            assert state not in ("FAILURE", "REVOKED", "CANCELLED"), status
            return state == "SUCCESS"
        t = time.monotonic()
        status, job_id = submit()
        assert status == 202, job_id
        wait_until(lambda: ended(job_id), 180, "the warm-up job", 0.1)
        figures["job_before_kill_s"] = round(time.monotonic() - t, 2)

        loads = [Load(f"{base}/align", {"image": image, "boxes": [BOX]}, 0.0), Load(f"{base}/readyz", None, 0.25)]
        for load in loads:
            load.start()
        time.sleep(3)  # the load's steady state, before the kill

        os.kill(worker, signal.SIGKILL)
        killed = time.monotonic()
        status, job_id = submit()
        figures["submit_during_outage"] = {"status": status, "s": round(time.monotonic() - killed, 3)}
        match = wait_until(lambda: re.search(r"restarted worker \(pid (\d+)\)", text()), 60, "the restart line", 0.02)
        figures["restart_line_s"] = round(time.monotonic() - killed, 2)
        new = int(match.group(1))
        figures["worker_pid"] = {"killed": worker, "new": new}
        wait_until(lambda: re.search(rf"@\S+\.{new} ready\.", text()), 120, "the new worker's ready line", 0.02)
        figures["new_worker_ready_s"] = round(time.monotonic() - killed, 2)  # Celery's "ready": it takes tasks
        wait_until(lambda: ended(job_id), 180, "the job submitted after the kill", 0.1)
        answered = time.monotonic()
        figures["new_worker_ran_the_job_s"] = round(answered - killed, 2)
        time.sleep(2)
        for load in loads:
            load.stop.set()
        align, ready = loads
        during = align.between(killed, answered)
        latencies = sorted(a[1] for a in during)
        figures["align_from_kill_until_new_worker_answered"] = {
            "sent": len(during), "failed": sum(a[2] != 200 for a in during),
            "statuses": sorted({a[2] for a in during}),
            "p50_ms": round(statistics.median(latencies) * 1e3, 1) if latencies else None,
            "max_ms": round(latencies[-1] * 1e3, 1) if latencies else None}
        before = sorted(a[1] for a in align.between(killed - 3, killed))
        figures["align_3s_before_kill"] = {"sent": len(before), "p50_ms": round(statistics.median(before) * 1e3, 1)
                                           if before else None}
        states: dict[str, int] = {}
        for a in ready.between(killed, answered):
            key = f"{a[2]} {a[3]}"
            states[key] = states.get(key, 0) + 1
        figures["readyz_from_kill_until_new_worker_answered"] = states
        figures["api_pid_unchanged"] = "restarted api" not in text()
    finally:
        for load in loads:
            load.stop.set()
        run.send_signal(signal.SIGTERM)
        try:
            run.wait(90)
        except subprocess.TimeoutExpired:
            run.kill()
        if not args.keep:
            import shutil
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            print(f"kept {tmp} (run.log, home/logs)")
    print(json.dumps(figures, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())

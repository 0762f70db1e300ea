"""Issue 12 item 7: /align never waits on MLflow. Real processes: an `mlflow server`, `sdhrnet serve` (uvicorn)
reaching it through a forwarder that can go silent (tests/blackhole.py), 8 closed-loop /align clients.
While MLflow is silent: no /align fails and its p99 stays near the baseline, GET /models answers 503 within
5 s, /readyz says `degraded`, and SIGTERM stops the API within 10 s. SDHRNET_OUTAGE_SECONDS sets how long
the outage lasts (default 12; the figures in the README come from 60); run with -s to see them."""
import asyncio
import base64
import json
import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from bench.load_align import run_level
from tests.blackhole import BlackholeProxy
from tests.service_support import png_bytes
from tests.services import free_port, wait_api_ready, wait_until
from tests.test_service_e2e import BOX, DATASET, register_versions

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]
REPO = Path(__file__).resolve().parents[1]
CLIENTS = 8


@pytest.fixture()
def api_behind_proxy(tmp_path, mlflow_server, monkeypatch):
    monkeypatch.setenv("SDHRNET_HOME", str(tmp_path / "registering"))
    from sdhrnet.settings import get_settings
    get_settings.cache_clear()
    register_versions(tmp_path, mlflow_server.url)
    get_settings.cache_clear()
    proxy = BlackholeProxy(int(mlflow_server.url.rsplit(":", 1)[1]))
    port = free_port()
    env = {**os.environ, "MLFLOW_TRACKING_URI": proxy.url, "SDHRNET_HOME": str(tmp_path / "home"),
           "SDHRNET_PRELOAD_DATASETS": DATASET, "SDHRNET_DEFAULT_DATASET": DATASET,
           "SDHRNET_MODEL_POLL_SECONDS": "1", "PYTHONPATH": str(REPO)}
    log = tmp_path / "api.log"
    api = subprocess.Popen([sys.executable, "-m", "sdhrnet.cli", "serve", "--port", str(port), "--no-access-log"],
                           cwd=tmp_path, env=env, stdout=open(log, "wb"), stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_api_ready(base, api, log, 180, "the API to load the champion through the proxy", interval=0.5)
        yield base, proxy, api, log
    finally:
        if api.poll() is None:
            api.kill()
            api.wait(10)
        proxy.close()


def load(base: str, seconds: float) -> dict:
    body = {"image": base64.b64encode(png_bytes()).decode(), "boxes": [BOX]}
    return asyncio.run(run_level(base, body, {}, {}, CLIENTS, seconds, 10**9))


def test_align_keeps_serving_while_mlflow_is_silent(api_behind_proxy):
    base, proxy, api, log = api_behind_proxy
    outage = float(os.environ.get("SDHRNET_OUTAGE_SECONDS", "12"))
    assert httpx.get(f"{base}/readyz").json()["status"] == "ready"
    before = load(base, 8)

    proxy.silent.set()
    with ThreadPoolExecutor(1) as pool:
        during_future = pool.submit(load, base, outage)
        start = time.perf_counter()
        models = httpx.get(f"{base}/models", timeout=30)
        models_s = time.perf_counter() - start
        degraded = wait_until(lambda: (r := httpx.get(f"{base}/readyz", timeout=5)).json().get("status") == "degraded"
                              and r, 20, "/readyz to say degraded", interval=0.5)
        during = during_future.result()
    start = time.perf_counter()
    api.send_signal(signal.SIGTERM)
    api.wait(30)
    stop_s = time.perf_counter() - start

    figures = {"clients": CLIENTS, "outage_s": outage, "before": before, "during": during,
               "models_status": models.status_code, "models_s": round(models_s, 2),
               "readyz": {"status_code": degraded.status_code, **{k: v for k, v in degraded.json().items()
                                                                   if k != "models"}},
               "shutdown_s": round(stop_s, 2)}
    print(json.dumps(figures, indent=1))
    assert before["errors"] == {} and during["errors"] == {}, figures
    assert during["requests"] > 0
    # the target is 1.5x; on a shared 2-core machine the test allows for noise, the README has the figure
    assert during["p99_ms"] < 3 * before["p99_ms"] + 100, figures
    assert models.status_code == 503 and models.headers["content-type"].startswith("application/problem+json")
    assert models_s < 5, figures
    assert degraded.status_code == 200 and degraded.json()["registry"] == "unreachable"
    assert stop_s < 10, figures

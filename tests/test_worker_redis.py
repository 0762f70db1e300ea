"""Jobs through a real worker process on Redis, with a real `mlflow server` (see tests/worker_flow.py)."""
import pytest

from tests.worker_flow import run_flow, worker_env

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]


def test_job_flow_on_redis_and_mlflow_server(tmp_path, monkeypatch, redis_url, mlflow_server, worker_factory):
    from sdhrnet.settings import get_settings

    env = worker_env({"REDIS_URL": redis_url, "MLFLOW_TRACKING_URI": mlflow_server.url,
                      "SDHRNET_HOME": str(tmp_path / "home")})
    for key in ("REDIS_URL", "MLFLOW_TRACKING_URI", "SDHRNET_HOME"):
        monkeypatch.setenv(key, env[key])
    get_settings.cache_clear()
    try:
        timings = run_flow(tmp_path, worker_factory, env, dataset="wkr-redis")
    finally:
        get_settings.cache_clear()
    print("durations:", {k: round(v, 1) for k, v in timings.items()})

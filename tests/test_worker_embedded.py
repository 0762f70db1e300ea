"""The same job flow on the embedded defaults: filesystem broker, SQLite results, SQLite MLflow store —
no Redis and no MLflow server (see tests/worker_flow.py)."""
import pytest

from tests.worker_flow import run_flow, worker_env

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]


def test_job_flow_on_embedded_defaults(tmp_path, monkeypatch, worker_factory):
    from sdhrnet.settings import get_settings

    home = tmp_path / "home"
    env = worker_env({"SDHRNET_HOME": str(home), "REDIS_URL": None, "MLFLOW_TRACKING_URI": None,
                      "SDHRNET_REDIS_URL": None, "SDHRNET_TRACKING_URI": None})
    monkeypatch.setenv("SDHRNET_HOME", str(home))
    for key in ("REDIS_URL", "MLFLOW_TRACKING_URI", "SDHRNET_REDIS_URL", "SDHRNET_TRACKING_URI"):
        monkeypatch.delenv(key, raising=False)
    get_settings.cache_clear()
    try:
        timings = run_flow(tmp_path, worker_factory, env, dataset="wkr-embedded")
        assert (home / "celery" / "results.sqlite").exists() and (home / "mlflow.db").exists()
    finally:
        get_settings.cache_clear()
    print("durations:", {k: round(v, 1) for k, v in timings.items()})

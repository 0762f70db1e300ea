import os
from pathlib import Path

# The suite runs pytest, workers, uvicorn and an MLflow server side by side on 2 cores: torch processes that
# each spin up a thread per core then fight over them and slow down many-fold; one thread each is fastest.
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("SDHRNET_THREADS", "1")

import pytest

pytest_plugins = ["tests.services"]

from tests.data_location import ENV_VAR, SKIP_MARKER, data_root, has_test_data

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = data_root()


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not has_test_data(SHARED_DATA):
        pytest.skip(f"{SKIP_MARKER} at {SHARED_DATA}; set {ENV_VAR} to the folder holding 300w/ and p1-ytf68/")
    return SHARED_DATA


def _skipped_for_missing_data(terminalreporter) -> int:
    count = 0
    for report in terminalreporter.stats.get("skipped", []):
        longrepr = report.longrepr
        reason = longrepr[2] if isinstance(longrepr, tuple) and len(longrepr) == 3 else str(longrepr)
        count += SKIP_MARKER in reason
    return count


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_terminal_summary(terminalreporter, exitstatus, config):
    """One line at the end (after the short summary, just before the counts): how many tests skipped because the
    real data is missing, and which variable points the tests at it."""
    result = yield
    skipped = _skipped_for_missing_data(terminalreporter)
    if skipped:
        terminalreporter.write_line(
            f"{skipped} test(s) skipped: real face data not found at {SHARED_DATA}; "
            f"set {ENV_VAR}=/path/to/data (the folder holding 300w/ and p1-ytf68/) to run them",
            yellow=True, bold=True)
    return result


@pytest.fixture
def settings_env(monkeypatch):
    """set(NAME=value, ...): environment variables for sdhrnet.settings, read afresh (the settings are cached per
    process); None removes one. Everything is restored, and the cache cleared, after the test."""
    from sdhrnet.settings import get_settings

    def set_env(**variables):
        for name, value in variables.items():
            if value is None:
                monkeypatch.delenv(name, raising=False)
            else:
                monkeypatch.setenv(name, str(value))
        get_settings.cache_clear()

    yield set_env
    monkeypatch.undo()
    get_settings.cache_clear()


@pytest.fixture(scope="module")
def tracking_home(tmp_path_factory, shared_data):
    """A fresh SDHRNET_HOME (embedded SQLite MLflow store, checkpoints) for one test module's training runs."""
    from sdhrnet.settings import get_settings

    mp = pytest.MonkeyPatch()
    path = tmp_path_factory.mktemp("sdhrnet-home")
    mp.setenv("SDHRNET_HOME", str(path))
    mp.delenv("MLFLOW_TRACKING_URI", raising=False)
    get_settings.cache_clear()
    yield path
    mp.undo()
    get_settings.cache_clear()

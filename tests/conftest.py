import os
from pathlib import Path

# The suite runs pytest, workers, uvicorn and an MLflow server side by side on 2 cores: torch processes that
# each spin up a thread per core then fight over them and slow down many-fold; one thread each is fastest.
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("SDHRNET_THREADS", "1")

import pytest

pytest_plugins = ["tests.services"]

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = (REPO / ".." / "shared" / "data").resolve()


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not (SHARED_DATA / "README.md").exists():
        pytest.skip(f"shared face data not found at {SHARED_DATA}; these tests read the real 68-point data from there")
    return SHARED_DATA

from pathlib import Path

import pytest

pytest_plugins = ["tests.services"]

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = (REPO / ".." / "shared" / "data").resolve()


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not (SHARED_DATA / "README.md").exists():
        pytest.skip(f"shared face data not found at {SHARED_DATA}; these tests read the real 68-point data from there")
    return SHARED_DATA

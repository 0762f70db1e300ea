"""Where the tests find the real 68-point data: `SDHRNET_TEST_DATA` (default `../shared/data`, relative to the repo).

A relative value is taken relative to the repository root, so the suite finds the same folder from any cwd.
"""
from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
ENV_VAR = "SDHRNET_TEST_DATA"
DEFAULT = "../shared/data"
# the reason every test that needs the data skips with; tests/conftest.py counts the skips by it
SKIP_MARKER = "real face data not found"


def data_root(environ=None) -> Path:
    value = (os.environ if environ is None else environ).get(ENV_VAR, "").strip() or DEFAULT
    path = Path(value).expanduser()
    return (path if path.is_absolute() else REPO / path).resolve()


def has_test_data(root: Path) -> bool:
    return (root / "README.md").is_file()

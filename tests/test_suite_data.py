"""SDHRNET_TEST_DATA points the suite at the real data, and a run that lacks it says so in one line at the end."""
import os
import subprocess
import sys
from pathlib import Path

from tests.data_location import DEFAULT, ENV_VAR, REPO, data_root

ONE_REAL_DATA_TEST = ["tests/test_data_readers.py", "-k", "test_shared_300w_counts_and_ids"]


def test_the_data_folder_defaults_to_shared_data_and_follows_the_variable(tmp_path):
    assert DEFAULT == "../shared/data"
    assert data_root({}) == (REPO / ".." / "shared" / "data").resolve()
    assert data_root({ENV_VAR: str(tmp_path)}) == tmp_path.resolve()
    assert data_root({ENV_VAR: "elsewhere/data"}) == (REPO / "elsewhere" / "data").resolve()  # relative to the repo


def _pytest(env_value: str) -> subprocess.CompletedProcess:
    env = {**os.environ, ENV_VAR: env_value, "OMP_NUM_THREADS": "1", "SDHRNET_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *ONE_REAL_DATA_TEST],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=300)


def test_a_run_without_the_data_ends_with_one_line_naming_the_count_and_the_variable(tmp_path):
    missing = tmp_path / "no-data-here"
    run = _pytest(str(missing))
    assert run.returncode == 0, run.stdout + run.stderr
    lines = [line for line in run.stdout.splitlines() if line.strip()]
    summary = [line for line in lines if "skipped: real face data not found" in line]
    assert len(summary) == 1, run.stdout
    assert summary[0].startswith("1 test(s) skipped") and ENV_VAR in summary[0] and str(missing) in summary[0]
    # it is the last line before pytest's own counts
    assert lines.index(summary[0]) == len(lines) - 2 and "1 skipped" in lines[-1], run.stdout


def test_a_run_with_the_data_elsewhere_finds_it_through_the_variable(tmp_path):
    """The default location is hidden behind a folder that is not ../shared/data: the test still runs, not skips."""
    default = data_root({})
    if not (default / "README.md").is_file():
        import pytest
        pytest.skip(f"needs the real data at {default} to link it elsewhere")
    elsewhere = tmp_path / "face-data"
    elsewhere.symlink_to(default, target_is_directory=True)
    run = _pytest(str(elsewhere))
    assert run.returncode == 0 and "1 passed" in run.stdout and "skipped" not in run.stdout, run.stdout + run.stderr

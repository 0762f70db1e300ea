"""Issue 12 item 9: a cancelled job's checkpoint goes at once; what a killed job left (its scratch folder, a
half-written `last.pt.tmp`) goes when the next job starts."""
import os
import subprocess
import sys
import time

from trainer.leftovers import STALE_TMP_S, make_workdir, remove_leftovers


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_leftovers_of_dead_processes_are_removed_and_nothing_else(tmp_path):
    temp, checkpoints = tmp_path / "tmp", tmp_path / "checkpoints"
    dead = temp / f"sdhrnet-slim-{dead_pid()}-abc123"
    alive = temp / f"sdhrnet-distill-{os.getpid()}-def456"
    foreign = temp / "sdhrnet-teacher-x1y2z3"  # not named after a process (older versions): left alone
    for folder in (dead, alive, foreign):
        (folder / "models").mkdir(parents=True)
    stale, fresh, kept = (checkpoints / "run1" / "last.pt.tmp", checkpoints / "run2" / "last.pt.tmp",
                          checkpoints / "run1" / "last.pt")
    for path in (stale, fresh, kept):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x" * 100)
    old = time.time() - STALE_TMP_S - 60
    os.utime(stale, (old, old))
    os.utime(kept, (old, old))

    assert sorted(remove_leftovers(checkpoints, temp)) == sorted([dead, stale])
    assert alive.exists() and foreign.exists() and fresh.exists() and kept.exists()
    assert not dead.exists() and not stale.exists()


def test_workdirs_carry_the_pid_the_sweep_reads(tmp_path, monkeypatch):
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    folder = make_workdir("slim")
    assert folder.parent == tmp_path and f"-{os.getpid()}-" in folder.name
    assert remove_leftovers(tmp_path / "none", tmp_path) == []  # its maker lives


def test_a_cancelled_job_deletes_its_checkpoint(tmp_path, monkeypatch):
    from sdhrnet.settings import get_settings
    from trainer.engine import JobCancelled, JobHooks
    from trainer.jobs import _run

    monkeypatch.setenv("SDHRNET_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    get_settings.cache_clear()
    seen = {}

    def cancelled_after_a_checkpoint(ctx):
        ctx.checkpoint.parent.mkdir(parents=True, exist_ok=True)
        ctx.checkpoint.write_bytes(b"x" * 1000)
        seen.update(checkpoint=ctx.checkpoint, workdir=ctx.workdir)
        raise JobCancelled("cancelled")
    (tmp_path / "data").mkdir()
    try:
        try:
            _run("slim", {"dataset": "300w", "data_root": str(tmp_path / "data"), "preset": "tiny"},
                 JobHooks(), cancelled_after_a_checkpoint)
        except JobCancelled:
            pass
        else:
            raise AssertionError("the job was not cancelled")
    finally:
        get_settings.cache_clear()
    assert seen["checkpoint"].is_relative_to(tmp_path)
    assert not seen["checkpoint"].parent.exists() and not seen["workdir"].exists()

"""What a killed job leaves behind, removed when the next job starts: its scratch folder (named after the
process that made it, so that only folders of dead processes go) and half-written checkpoints (`*.tmp`,
which `save_checkpoint` renames within seconds when its writer lives)."""
from __future__ import annotations

import logging
import os
import re
import shutil
import tempfile
import time
from pathlib import Path

log = logging.getLogger(__name__)
WORKDIR_PREFIX = "sdhrnet-{kind}-{pid}-"
_WORKDIR = re.compile(r"^sdhrnet-[a-z]+-(\d+)-[a-z0-9_]+$")
STALE_TMP_S = 600.0


def make_workdir(kind: str) -> Path:
    return Path(tempfile.mkdtemp(prefix=WORKDIR_PREFIX.format(kind=kind, pid=os.getpid())))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


def remove_leftovers(checkpoint_dir: Path, temp_dir: Path | None = None) -> list[Path]:
    """-> what was removed."""
    removed: list[Path] = []
    temp_dir = Path(temp_dir or tempfile.gettempdir())
    for entry in temp_dir.glob("sdhrnet-*"):
        match = _WORKDIR.match(entry.name)
        if match and entry.is_dir() and not _alive(int(match.group(1))):
            shutil.rmtree(entry, ignore_errors=True)
            removed.append(entry)
    cutoff = time.time() - STALE_TMP_S
    for tmp in Path(checkpoint_dir).glob("*/*.tmp"):
        try:
            if tmp.stat().st_mtime < cutoff:
                tmp.unlink()
                removed.append(tmp)
        except FileNotFoundError:
            pass
    if removed:
        log.info("removed %d leftovers of killed jobs (e.g. %s)", len(removed), removed[0])
    return removed

"""Labelled sets that /evaluate unpacks for an evaluate job: one folder each under SDHRNET_HOME/uploads.

The API creates a folder and names it in the job's params (`upload`); the worker removes it once the job has
ended and its outcome is stored, and the API's start-up sweep removes what a lost job left after
SDHRNET_UPLOAD_RETENTION_HOURS."""
from __future__ import annotations

import shutil
import tempfile
import time
import uuid
from pathlib import Path

from sdhrnet.settings import get_settings


def uploads_dir() -> Path:
    return Path(get_settings().home) / "uploads"


def new_upload_folder() -> Path:
    folder = uploads_dir()
    folder.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=f"eval-{uuid.uuid4().hex[:8]}-", dir=folder))


def remove_upload(path: str | Path) -> bool:
    """Remove one upload folder; anything that is not a folder directly under uploads_dir() is left alone (job
    params come from a queue, and a wrong path there must not delete elsewhere)."""
    folder = Path(path).resolve()
    if folder.parent != uploads_dir().resolve() or not folder.is_dir():
        return False
    shutil.rmtree(folder, ignore_errors=True)
    return not folder.exists()


def remove_old_uploads(retention_hours: float) -> None:
    folder = uploads_dir()
    if not folder.is_dir():
        return
    cutoff = time.time() - retention_hours * 3600
    for entry in folder.iterdir():
        try:
            if entry.stat().st_mtime < cutoff:
                shutil.rmtree(entry, ignore_errors=True)
        except OSError:
            pass

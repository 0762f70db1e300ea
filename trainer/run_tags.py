"""What every run store (MLflow, or the offline folder) records the same way: tag names, the resume rule and
how params are flattened. No MLflow import here, so the offline path can use it."""
from __future__ import annotations

import json
from typing import Any

RESUME_TAG = "sdhrnet.resume_key"
JOB_TAG = "sdhrnet.job_id"
KIND_TAG = "sdhrnet.kind"
DATASET_TAG = "sdhrnet.dataset"
CHECKPOINT_TAG = "sdhrnet.checkpoint"
RUN_NAME_TAG = "mlflow.runName"  # MLflow's own tag for the run name; the offline store keeps it too
# An imported run remembers the offline run it came from, so importing the same folder twice adds nothing.
OFFLINE_ID_TAG = "sdhrnet.offline_run_id"

# Run statuses as MLflow names them. A run in one of RESUMABLE is continued from its checkpoint by the next
# attempt with the same resume key; a KILLED (cancelled) run is not: the key then starts a fresh run.
FINISHED = "FINISHED"
RESUMABLE = ("RUNNING", "FAILED", "SCHEDULED")
PARAM_MAX_CHARS = 6000  # MLflow's limit on a param value; the offline store keeps the same, so imports fit


def flatten(d: dict[str, Any], prefix: str = "") -> dict[str, str]:
    out: dict[str, str] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(flatten(v, key + "."))
        else:
            out[key] = json.dumps(v) if isinstance(v, (list, tuple)) else str(v)
    return out


def fresh_params(params: dict[str, Any], existing: dict[str, str]) -> dict[str, str]:
    """Flattened params not logged yet (a param is written once; a resumed run keeps its first values)."""
    return {k: v[:PARAM_MAX_CHARS] for k, v in flatten(params).items() if k not in existing}

"""Thin adapters over the registry (registry package) and the job queue (worker.api), both owned by
issue 5. Imported lazily so that the API starts while MLflow or the broker are slow, and so that tests
can inject in-memory fakes with the same methods."""
import math
import os


class RegistryBackend:
    def __init__(self, request_timeout_s: float | None = None):
        if request_timeout_s:
            # MLflow reads these per request; its defaults (120 s, 7 retries with backoff: minutes per call)
            # suit training jobs, not an API answering in seconds. Explicit settings of the operator win.
            os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", str(max(1, math.ceil(request_timeout_s))))
            os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")

    def champion(self, dataset: str):
        from registry import champion

        return champion(dataset)

    def list_models(self):
        from registry import list_models

        return list_models()

    def promote(self, dataset: str, version: int, who: str):
        from registry import promote

        return _conflict_is_409(promote, dataset, version, who=who)

    def promote_within(self, dataset: str, limits: dict[str, float], who: str):
        from registry import promote_within

        return _conflict_is_409(promote_within, dataset, limits, who=who)

    def rollback(self, dataset: str, who: str):
        from registry import rollback

        return _conflict_is_409(rollback, dataset, who=who)

    def run_exists(self, run_id: str) -> bool:
        from registry import run_exists

        return run_exists(run_id)


def _conflict_is_409(call, *args, **kwargs):
    from registry import RegistryConflict

    from .errors import Problem

    try:
        return call(*args, **kwargs)
    except RegistryConflict as exc:  # a fact about what is registered, not a malformed request
        raise Problem(409, str(exc)) from None


class JobsBackend:
    def submit(self, kind: str, params: dict) -> str:
        from worker.api import submit

        return str(submit(kind, params))

    def status(self, job_id: str) -> dict | None:
        from worker.api import job_status

        return job_status(job_id)

    def cancel(self, job_id: str):
        from worker.api import request_cancel

        return request_cancel(job_id)

    def list(self) -> list[dict]:
        from worker.api import list_jobs

        return list(list_jobs())

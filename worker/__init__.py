"""Celery jobs: the worker app (worker.app), its tasks (worker.tasks) and what the API calls (worker.api)."""
from worker.api import job_status, list_jobs, request_cancel, submit

__all__ = ["job_status", "list_jobs", "request_cancel", "submit"]

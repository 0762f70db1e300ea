"""Configuration shared by the trainer, registry, worker and service (environment variables).

Everything defaults to an embedded set-up under `SDHRNET_HOME` (default `./.sdhrnet` in the
working directory): a SQLite MLflow store, a local artifact folder, a filesystem Celery broker.
"""
from functools import lru_cache
from pathlib import Path

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict


# an empty variable (`SDHRNET_HOME=`, `REDIS_URL=` in a compose file) means "not set", not "the current folder"
_ENV = SettingsConfigDict(env_prefix="SDHRNET_", extra="ignore", env_ignore_empty=True)


class WorkerSettings(BaseSettings):
    """The job queue's timings (SDHRNET_JOB_LEASE_SECONDS, ...)."""
    model_config = _ENV

    job_lease_seconds: float = Field(60.0, gt=0)  # a dead worker's job is re-queued once its lease expires
    recovery_interval: float = Field(30.0, gt=0)  # seconds between a worker's looks for orphaned jobs
    # Redis hands an unacknowledged message out again after this long: above the longest job (the lease is faster)
    visibility_timeout: int = Field(48 * 3600, gt=0)
    progress_seconds: float = Field(1.0, ge=0)  # at most one PROGRESS write per job per this many seconds


class Settings(BaseSettings):
    model_config = _ENV

    home: Path = Field(default_factory=lambda: Path.cwd() / ".sdhrnet")
    # standard variable names are honoured so that MLflow/Celery users need not learn new ones
    tracking_uri: str | None = Field(default=None, validation_alias=AliasChoices("MLFLOW_TRACKING_URI", "SDHRNET_TRACKING_URI"))
    redis_url: str | None = Field(default=None, validation_alias=AliasChoices("REDIS_URL", "SDHRNET_REDIS_URL"))
    api_keys: str = ""  # comma-separated `name:key` (or bare keys, named key-1, key-2, ...); empty = no key required
    device: str = "cpu"
    threads: int | None = None  # torch CPU threads for training jobs; None = torch default
    # record training runs in this folder instead of MLflow (machines without it); `sdhrnet import-runs` logs them later
    offline_runs: Path | None = None
    promotion_policy: str | None = None  # registry.policy: better-nme (default), always, manual
    worker: WorkerSettings = Field(default_factory=WorkerSettings)

    @property
    def mlflow_uri(self) -> str:
        return self.tracking_uri or f"sqlite:///{(self.home / 'mlflow.db').resolve()}"

    @property
    def artifact_root(self) -> Path:
        return self.home / "mlartifacts"

    @property
    def checkpoint_dir(self) -> Path:
        return self.home / "checkpoints"

    @property
    def api_keys_by_name(self) -> dict[str, str]:
        return parse_api_keys(self.api_keys.split(","))


def parse_api_keys(entries) -> dict[str, str]:
    """name -> key. Names are what the promotion history records about who acted, so that no part of a key
    is ever shown; bare keys (the older format) are named by their position."""
    keys: dict[str, str] = {}
    for position, entry in enumerate((e.strip() for e in entries if e.strip()), start=1):
        name, named, key = entry.partition(":")
        name, key = (name.strip(), key.strip()) if named else (f"key-{position}", entry)
        if not key or not name or name in keys:
            raise ValueError(f"SDHRNET_API_KEYS entry {position} lacks a name or a key, or reuses the name '{name}'; "
                             "write name:key,name:key with a distinct name for each key")
        keys[name] = key
    return keys


@lru_cache
def get_settings() -> Settings:
    s = Settings()
    s.home.mkdir(parents=True, exist_ok=True)
    return s

"""Configuration shared by the trainer, registry, worker and service (environment variables).

Everything defaults to an embedded set-up under `SDHRNET_HOME` (default `./.sdhrnet` in the
working directory): a SQLite MLflow store, a local artifact folder, a filesystem Celery broker.
"""
from functools import lru_cache
from pathlib import Path

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    # an empty variable (`SDHRNET_HOME=`, `REDIS_URL=` in a compose file) means "not set", not "the current folder"
    model_config = SettingsConfigDict(env_prefix="SDHRNET_", extra="ignore", env_ignore_empty=True)

    home: Path = Field(default_factory=lambda: Path.cwd() / ".sdhrnet")
    # standard variable names are honoured so that MLflow/Celery users need not learn new ones
    tracking_uri: str | None = Field(default=None, validation_alias=AliasChoices("MLFLOW_TRACKING_URI", "SDHRNET_TRACKING_URI"))
    redis_url: str | None = Field(default=None, validation_alias=AliasChoices("REDIS_URL", "SDHRNET_REDIS_URL"))
    api_keys: str = ""  # comma-separated; empty = no key required
    device: str = "cpu"
    threads: int | None = None  # torch CPU threads for training jobs; None = torch default

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
    def api_key_set(self) -> frozenset[str]:
        return frozenset(k.strip() for k in self.api_keys.split(",") if k.strip())


@lru_cache
def get_settings() -> Settings:
    s = Settings()
    s.home.mkdir(parents=True, exist_ok=True)
    return s

"""Configuration shared by the trainer, registry, worker and service (environment variables).

Everything defaults to an embedded set-up under `SDHRNET_HOME` (default `./.sdhrnet` in the
working directory): a SQLite MLflow store, a local artifact folder, a filesystem Celery broker.
"""
import os
import re
from functools import lru_cache
from pathlib import Path
from typing import Annotated

from pydantic import AfterValidator, AliasChoices, Field, WithJsonSchema
from pydantic_core import PydanticCustomError
from pydantic_settings import BaseSettings, SettingsConfigDict


# an empty variable (`SDHRNET_HOME=`, `REDIS_URL=` in a compose file) means "not set", not "the current folder"
_ENV = SettingsConfigDict(env_prefix="SDHRNET_", extra="ignore", env_ignore_empty=True)

# The devices a training job can run on, in torch's spelling: the ones trainer.engine.setup_torch prepares. Checked
# without torch, so that the API refuses any other when a job is submitted and a mistyped SDHRNET_DEVICE stops the
# worker at start rather than failing every job it takes.
DEVICE_PATTERN = r"^(cpu|cuda(:[0-9]+)?)$"
DEVICE_FORMS = "cpu, cuda or cuda:N (N: the index of a GPU of the worker, from 0)"


def device_problem(value: str) -> str | None:
    """Why the trainer cannot run on `value`, or None where it can (whether this machine has that GPU is
    trainer.engine.setup_torch's to say)."""
    return None if re.fullmatch(DEVICE_PATTERN, value) else f"unknown device {value[:40]!r}; use {DEVICE_FORMS}"


def check_device(value: str) -> str:
    problem = device_problem(value)
    if problem:
        # the message goes in as context, so braces in what was sent are not read as a template's
        raise PydanticCustomError("device", "{problem}", {"problem": problem})
    return value


Device = Annotated[str, AfterValidator(check_device),
                   WithJsonSchema({"type": "string", "pattern": DEVICE_PATTERN, "examples": ["cuda"]})]


class WorkerSettings(BaseSettings):
    """The job queue's timings (SDHRNET_JOB_LEASE_SECONDS, ...)."""
    model_config = _ENV

    job_lease_seconds: float = Field(60.0, gt=0)  # a dead worker's job is re-queued once its lease expires
    recovery_interval: float = Field(30.0, gt=0)  # seconds between a worker's looks for orphaned jobs
    # Redis hands an unacknowledged message out again after this long: above the longest job (the lease is faster)
    visibility_timeout: int = Field(48 * 3600, gt=0)
    progress_seconds: float = Field(1.0, ge=0)  # at most one PROGRESS write per job per this many seconds


class ServiceSettings(BaseSettings):
    """The API's limits, batching and model following (SDHRNET_MAX_REQUEST_BYTES, ...); read by service/ only."""
    model_config = _ENV

    max_request_bytes: int = 16 * 1024 * 1024
    max_archive_bytes: int = 512 * 1024 * 1024  # multipart uploads to /evaluate (dataset archives)
    max_faces: int = 32
    # slow clients (`sdhrnet serve`): the request head must arrive within head_timeout_seconds, its header
    # fields take at most max_header_bytes, the whole head at most max_head_bytes (URLs of the web page may
    # carry an image), and a body may pause at most body_idle_seconds between two chunks
    head_timeout_seconds: float = 10.0
    max_header_bytes: int = 32 * 1024
    max_head_bytes: int = 2 * 1024 * 1024
    body_idle_seconds: float = 15.0
    # read from the header before decoding (decompression bombs); Pillow refuses above 179 M in any case
    max_image_pixels: int = 40_000_000
    batch_wait_ms: float = 4.0  # how long the first face of a batch waits for company
    max_batch: int = 32
    evaluate_sync_limit: int = 64  # items scored inline; larger sets become an evaluate job
    align_requires_key: bool = False
    model_poll_seconds: float = 10.0
    # every registry call of the API ends within this (503 after it); MLflow's own per-request timeout is set
    # to it and its retries to none, as the champion poll above is the retry. A model download that overruns
    # finishes in the background into the registry cache and is loaded at the next poll.
    registry_timeout_seconds: float = 3.0
    registry_threads: int = 2  # registry calls run here, never on the threads that serve /align
    default_dataset: str = "300w"
    preload_datasets: str = "300w"  # comma-separated; loaded at start-up so /readyz can turn green
    inference_threads: int = 1  # onnxruntime intra-op threads per model
    upload_retention_hours: float = 72.0  # evaluation sets that a lost job left behind are removed after this
    default_model_dir: str | None = None  # registered when the registry is empty (default sdhrnet/default_model)
    # `sdhrnet run` only: the store of the MLflow server it starts (default SQLite under SDHRNET_HOME)
    mlflow_backend_store_uri: str | None = None
    mlflow_artifacts_destination: str | None = None
    mlflow_ui_url: str | None = None  # for run links in job status; default: MLFLOW_TRACKING_URI when it is http(s)

    @property
    def preload_list(self) -> list[str]:
        return [d.strip() for d in self.preload_datasets.split(",") if d.strip()]

    @classmethod
    def settings_customise_sources(cls, settings_cls, init_settings, env_settings, dotenv_settings,
                                   file_secret_settings):
        return init_settings, _preload_nothing, env_settings, dotenv_settings, file_secret_settings


def _preload_nothing() -> dict:
    """The one empty variable that is not "unset": `SDHRNET_PRELOAD_DATASETS=` preloads no dataset (the tests and
    benchmarks that start a server without a model rely on it)."""
    return {"preload_datasets": ""} if os.environ.get("SDHRNET_PRELOAD_DATASETS") == "" else {}


class Settings(BaseSettings):
    model_config = _ENV

    home: Path = Field(default_factory=lambda: Path.cwd() / ".sdhrnet")
    # standard variable names are honoured so that MLflow/Celery users need not learn new ones
    tracking_uri: str | None = Field(default=None, validation_alias=AliasChoices("MLFLOW_TRACKING_URI", "SDHRNET_TRACKING_URI"))
    redis_url: str | None = Field(default=None, validation_alias=AliasChoices("REDIS_URL", "SDHRNET_REDIS_URL"))
    api_keys: str = ""  # comma-separated `name:key` (or bare keys, named key-1, key-2, ...); empty = no key required
    # checked where a job is submitted (the API) and where one runs (`sdhrnet worker` refuses to start), not here:
    # a worker's setting must not stop the API that reads the same environment
    device: str = "cpu"
    threads: int | None = None  # torch CPU threads for training jobs; None = torch default
    # a file holding a thread count that a running training follows (sdhrnet pipeline moves the cores of a
    # finished stage to the ones still running)
    threads_file: Path | None = None
    # record training runs in this folder instead of MLflow (machines without it); `sdhrnet import-runs` logs them later
    offline_runs: Path | None = None
    promotion_policy: str | None = None  # registry.policy: better-nme (default), always, manual
    worker: WorkerSettings = Field(default_factory=WorkerSettings)
    service: ServiceSettings = Field(default_factory=ServiceSettings)

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

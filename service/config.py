"""Service-only settings (environment variables prefixed SDHRNET_); shared ones live in sdhrnet.settings."""
from functools import lru_cache

from pydantic_settings import BaseSettings, SettingsConfigDict


class ServiceSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SDHRNET_", extra="ignore")

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
    upload_retention_hours: float = 72.0  # evaluation sets handed to jobs are removed after this
    default_model_dir: str | None = None  # registered when the registry is empty (default sdhrnet/default_model)
    # `sdhrnet run` only: the store of the MLflow server it starts (default SQLite under SDHRNET_HOME)
    mlflow_backend_store_uri: str | None = None
    mlflow_artifacts_destination: str | None = None
    mlflow_ui_url: str | None = None  # for run links in job status; default: MLFLOW_TRACKING_URI when it is http(s)

    @property
    def preload_list(self) -> list[str]:
        return [d.strip() for d in self.preload_datasets.split(",") if d.strip()]


@lru_cache
def get_service_settings() -> ServiceSettings:
    return ServiceSettings()

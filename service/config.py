"""Service-only settings (environment variables prefixed SDHRNET_); shared ones live in sdhrnet.settings."""
from functools import lru_cache

from pydantic_settings import BaseSettings, SettingsConfigDict


class ServiceSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SDHRNET_", extra="ignore")

    max_request_bytes: int = 16 * 1024 * 1024
    max_archive_bytes: int = 512 * 1024 * 1024  # multipart uploads to /evaluate (dataset archives)
    max_faces: int = 32
    max_image_pixels: int = 40_000_000  # guards cv2.imdecode against decompression bombs
    batch_wait_ms: float = 4.0  # how long the first face of a batch waits for company
    max_batch: int = 32
    evaluate_sync_limit: int = 64  # items scored inline; larger sets become an evaluate job
    align_requires_key: bool = False
    model_poll_seconds: float = 10.0
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

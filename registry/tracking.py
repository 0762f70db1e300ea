"""MLflow connection set-up shared by the registry and the worker.

Telemetry and the artifact progress bars are switched off before MLflow is imported: workers and
the API run unattended, and a progress bar per download only clutters their logs."""
import os

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("DO_NOT_TRACK", "true")
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")

from pathlib import Path  # noqa: E402

import mlflow  # noqa: E402
from mlflow import MlflowClient  # noqa: E402

SERVER_SCHEMES = ("http", "https", "databricks")


def is_server_uri(uri: str) -> bool:
    """A tracking server decides where artifacts live; a direct store needs a local artifact root."""
    return uri.split(":", 1)[0].lower() in SERVER_SCHEMES


def connect(uri: str) -> MlflowClient:
    # the fluent API (used by log_model) reads the process-wide URIs, so keep them in step with the client
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def ensure_experiment(client: MlflowClient, name: str, artifact_root: Path | None) -> str:
    experiment = client.get_experiment_by_name(name)
    if experiment is not None:
        return experiment.experiment_id
    location = None
    if artifact_root is not None and not is_server_uri(client.tracking_uri):
        location = (Path(artifact_root).resolve() / name).as_uri()
    try:
        return client.create_experiment(name, artifact_location=location)
    except mlflow.exceptions.MlflowException:
        # another process created it between our lookup and our create
        experiment = client.get_experiment_by_name(name)
        if experiment is None:
            raise
        return experiment.experiment_id

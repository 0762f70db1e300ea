"""MLflow connection set-up shared by the registry, the trainer and the worker: the client, and the experiments
(one rule for where a new experiment keeps its artifacts).

Telemetry and the artifact progress bars are switched off before MLflow is imported (every module of ours imports
mlflow through this one): workers and the API run unattended, and a progress bar per download only clutters their
logs."""
import os

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("DO_NOT_TRACK", "true")
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")

from pathlib import Path  # noqa: E402

import mlflow  # noqa: E402
from mlflow import MlflowClient  # noqa: E402

from sdhrnet.settings import get_settings  # noqa: E402

SERVER_SCHEMES = ("http", "https", "databricks")
EXPERIMENT_PREFIX = "sdhrnet-"  # a dataset's training runs: experiment sdhrnet-<dataset>


def is_server_uri(uri: str) -> bool:
    """A tracking server decides where artifacts live; a direct store needs a local artifact root."""
    return uri.split(":", 1)[0].lower() in SERVER_SCHEMES


def client(uri: str | None = None) -> MlflowClient:
    """A client of the configured store (SDHRNET_HOME's SQLite database, or MLFLOW_TRACKING_URI) that leaves the
    process-wide fluent URIs alone (training runs inside worker processes)."""
    return MlflowClient(tracking_uri=uri or get_settings().mlflow_uri)


def connect(uri: str) -> MlflowClient:
    # the fluent API (used by log_model) reads the process-wide URIs, so keep them in step with the client
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def ensure_experiment(client: MlflowClient, name: str, artifact_root: Path | None) -> str:
    """The id of the experiment `name`, created when missing. A direct store (SQLite, PostgreSQL, ...) keeps the
    new experiment's artifacts in `artifact_root`/`name`; a tracking server decides for itself."""
    experiment = client.get_experiment_by_name(name)
    if experiment is not None:
        return experiment.experiment_id
    location = None
    if artifact_root is not None and not is_server_uri(client.tracking_uri):
        location = (Path(artifact_root).resolve() / name).as_uri()
    try:
        return client.create_experiment(name, artifact_location=location)
    except Exception:
        # another process created it between our lookup and our create
        experiment = client.get_experiment_by_name(name)
        if experiment is None:
            raise
        return experiment.experiment_id


def dataset_experiment(client: MlflowClient, dataset: str) -> str:
    """The experiment of a dataset's training runs, created on first use."""
    return ensure_experiment(client, EXPERIMENT_PREFIX + dataset, get_settings().artifact_root)

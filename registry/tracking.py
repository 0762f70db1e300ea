"""MLflow connection set-up shared by the registry, the trainer and the worker: the client, and the experiments
(one rule for where a new experiment keeps its artifacts).

Telemetry and the artifact progress bars are switched off before MLflow is imported (every module of ours imports
mlflow through this one): workers and the API run unattended, and a progress bar per download only clutters their
logs."""
import fcntl
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


_ready_stores: set[str] = set()


def _ready(uri: str) -> str:
    """`uri`, its store created and migrated. MLflow creates and upgrades a SQLite database on first use without a
    lock, so two stages started at once on a fresh SDHRNET_HOME raced on the schema ("duplicate column name");
    one process at a time does that first touch here, behind a lock file next to the database."""
    if uri in _ready_stores or not uri.startswith("sqlite:///"):
        return uri
    database = Path(uri[len("sqlite:///"):])
    try:
        database.parent.mkdir(parents=True, exist_ok=True)
        lock = open(database.with_name(database.name + ".lock"), "a")
    except OSError:  # a read-only home: nothing here will create or migrate the store
        _ready_stores.add(uri)
        return uri
    with lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        MlflowClient(tracking_uri=uri).search_experiments(max_results=1)
        MlflowClient(tracking_uri=uri, registry_uri=uri).search_registered_models(max_results=1)
    _ready_stores.add(uri)
    return uri


def client(uri: str | None = None) -> MlflowClient:
    """A client of the configured store (SDHRNET_HOME's SQLite database, or MLFLOW_TRACKING_URI) that leaves the
    process-wide fluent URIs alone (training runs inside worker processes)."""
    return MlflowClient(tracking_uri=_ready(uri or get_settings().mlflow_uri))


def connect(uri: str) -> MlflowClient:
    # the fluent API (used by log_model) reads the process-wide URIs, so keep them in step with the client
    _ready(uri)
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

"""What the route handlers need, as typed FastAPI dependencies: `create_app` keeps these objects on
`app.state`; this module is the one place that reads them from there."""
from typing import Annotated

from fastapi import Depends, Request

from sdhrnet.settings import ServiceSettings

from .metrics import ServiceMetrics
from .models import ModelManager
from .registry_client import RegistryClient


def get_settings(request: Request) -> ServiceSettings:
    return request.app.state.service_settings


def get_api_keys(request: Request) -> dict[str, str]:
    """name -> key; empty when the server runs without keys."""
    return request.app.state.api_keys


def get_models(request: Request) -> ModelManager:
    return request.app.state.models


def get_registry(request: Request) -> RegistryClient:
    return request.app.state.registry


def get_jobs(request: Request):
    """The job queue client (worker.api, or a test fake): submit/status/cancel/list."""
    return request.app.state.jobs


def get_metrics(request: Request) -> ServiceMetrics:
    return request.app.state.metrics


def get_mlflow_ui_url(request: Request) -> str | None:
    return request.app.state.mlflow_ui_url


ApiKeys = Annotated[dict[str, str], Depends(get_api_keys)]
Settings = Annotated[ServiceSettings, Depends(get_settings)]
Models = Annotated[ModelManager, Depends(get_models)]
Registry = Annotated[RegistryClient, Depends(get_registry)]
Jobs = Annotated[object, Depends(get_jobs)]
Metrics = Annotated[ServiceMetrics, Depends(get_metrics)]
MlflowUiUrl = Annotated[str | None, Depends(get_mlflow_ui_url)]

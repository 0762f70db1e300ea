"""The FastAPI application: `create_app()` wires settings, backends, model following and routes."""
import asyncio
import contextlib
import logging
from pathlib import Path

from fastapi import FastAPI
from fastapi_offline import FastAPIOffline
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

from sdhrnet.settings import ServiceSettings, get_settings
from sdhrnet.uploads import remove_old_uploads

from .backends import JobsBackend, RegistryBackend
from .errors import install_error_handlers
from .head_requests import HeadAsGetMiddleware
from .limits import RequestLimitsMiddleware
from .metrics import MetricsMiddleware, ServiceMetrics
from .models import ModelManager
from .openapi_defs import describe_as_sent
from .registry_client import RegistryClient
from .routes import align as routes_align, evaluate as routes_evaluate, health as routes_health, \
    jobs as routes_jobs, models as routes_models
from .security import keys_by_name

log = logging.getLogger("sdhrnet.service")
STATIC = Path(__file__).parent / "static"
DESCRIPTION = """Facial landmarks with SD-HRNet models served by ONNX Runtime, plus the jobs that train them
and the registry that decides which version is served. Errors are `application/problem+json`.
Endpoints marked with a lock need `X-API-Key` when `SDHRNET_API_KEYS` is set. Every GET route also answers HEAD."""


def _ui_url(service_settings: ServiceSettings) -> str | None:
    if service_settings.mlflow_ui_url:
        return service_settings.mlflow_ui_url.rstrip("/")
    uri = get_settings().tracking_uri or ""
    return uri.rstrip("/") if uri.startswith(("http://", "https://")) else None


def create_app(service_settings: ServiceSettings | None = None, *, registry=None, jobs=None,
               api_keys=None) -> FastAPI:
    """`api_keys`: name -> key, or bare keys; default SDHRNET_API_KEYS."""
    service_settings = service_settings or get_settings().service

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        manager: ModelManager = app.state.models
        await asyncio.to_thread(remove_old_uploads, service_settings.upload_retention_hours)
        # preloading in the background keeps start-up instant; /readyz turns green when it is done
        preload = [asyncio.create_task(_preload(manager, d)) for d in service_settings.preload_list]
        poller = asyncio.create_task(manager.poll_forever()) if service_settings.model_poll_seconds > 0 else None
        try:
            yield
        finally:
            for task in [*preload, poller]:
                if task is not None:
                    task.cancel()
            await manager.close()
            app.state.registry.close()

    # /docs and /redoc from assets in the fastapi-offline package: FastAPI's defaults load them from a CDN, so the
    # API docs were a blank page on machines without internet
    app = FastAPIOffline(title="SD-HRNet landmarks", version="1.0.0", description=DESCRIPTION, lifespan=lifespan)
    metrics = ServiceMetrics()
    app.state.service_settings = service_settings
    app.state.api_keys = get_settings().api_keys_by_name if api_keys is None else keys_by_name(api_keys)
    app.state.registry = RegistryClient(
        registry or RegistryBackend(request_timeout_s=service_settings.registry_timeout_seconds),
        threads=service_settings.registry_threads, timeout_s=service_settings.registry_timeout_seconds)
    app.state.jobs = jobs or JobsBackend()
    app.state.metrics = metrics
    app.state.models = ModelManager(app.state.registry, service_settings, metrics)
    app.state.mlflow_ui_url = _ui_url(service_settings)

    install_error_handlers(app)
    for module in (routes_align, routes_evaluate, routes_jobs, routes_models, routes_health):
        app.include_router(module.router)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    describe_as_sent(app)

    @app.api_route("/", methods=["GET", "HEAD"], include_in_schema=False)
    async def index():
        return FileResponse(STATIC / "index.html")

    # the last added is the outermost: metrics see every status and the method as sent, the size limit answers
    # before anything reads the body
    app.add_middleware(HeadAsGetMiddleware)
    app.add_middleware(RequestLimitsMiddleware, max_bytes=service_settings.max_request_bytes,
                       max_archive_bytes=service_settings.max_archive_bytes,
                       body_idle_s=service_settings.body_idle_seconds, max_header_bytes=service_settings.max_header_bytes)
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    return app


async def _preload(manager: ModelManager, dataset: str) -> None:
    try:
        await manager.get(dataset)
    except Exception as exc:
        log.warning("no model served yet for %s: %s", dataset, getattr(exc, "detail", exc))

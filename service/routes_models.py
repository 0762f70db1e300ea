"""Registered models per dataset, manual promotion and rollback of the champion alias."""
import asyncio
import hashlib
import logging

from fastapi import APIRouter, Path, Request

from .errors import Problem
from .jsonsafe import to_jsonable
from .schemas import DATASET_PATTERN, ModelsResponse, PromoteRequest, problem_responses
from .security import ApiKey

log = logging.getLogger("sdhrnet.service.models")
router = APIRouter(prefix="/models", tags=["models"])
DATASET = Path(pattern=DATASET_PATTERN, description="dataset whose registered model is meant, e.g. 300w")


def who(request: Request) -> str:
    """Who promoted: a short hash of the API key (never the key itself), else the client address."""
    key = request.headers.get("x-api-key")
    if key:
        return "api-key:" + hashlib.sha256(key.encode()).hexdigest()[:10]
    return "api:" + (request.client.host if request.client else "unknown")


async def _registry(request: Request, method: str, *args, **kwargs):
    try:
        return await asyncio.to_thread(getattr(request.app.state.registry, method), *args, **kwargs)
    except (Problem, ValueError):
        raise
    except LookupError as exc:
        raise Problem(404, str(exc).strip("'\"") or "not found; GET /models lists what is registered") from None
    except Exception as exc:
        log.warning("registry %s failed", method, exc_info=True)
        raise Problem(503, f"the model registry is not reachable ({type(exc).__name__}: {exc}); check "
                           "MLFLOW_TRACKING_URI / the mlflow server", headers={"Retry-After": "10"}) from None


def _served(request: Request) -> dict:
    return {d: m.describe() for d, m in request.app.state.models.loaded.items()}


async def _follow(request: Request, dataset: str) -> None:
    """Load the new champion now rather than at the next poll; a failure leaves the poller to retry."""
    try:
        await request.app.state.models.refresh(dataset)
    except Exception:
        log.warning("could not load the new champion of %s yet", dataset, exc_info=True)


@router.get("", response_model=ModelsResponse, responses=problem_responses(503),
            summary="Registered versions, aliases and metrics per dataset; what this server serves")
async def list_models(request: Request):
    models = await _registry(request, "list_models")
    return {"models": to_jsonable(models), "served": _served(request)}


@router.post("/{dataset}/promote", response_model=ModelsResponse, dependencies=[ApiKey],
             responses=problem_responses(401, 404, 422, 503), summary="Make a version the champion of a dataset")
async def promote(request: Request, body: PromoteRequest, dataset: str = DATASET):
    result = await _registry(request, "promote", dataset, body.version, who(request))
    await _follow(request, dataset)
    return {"models": to_jsonable(result), "served": _served(request)}


@router.post("/{dataset}/rollback", response_model=ModelsResponse, dependencies=[ApiKey],
             responses=problem_responses(401, 404, 422, 503), summary="Give the champion alias back to the previous version")
async def rollback(request: Request, dataset: str = DATASET):
    result = await _registry(request, "rollback", dataset, who(request))
    await _follow(request, dataset)
    return {"models": to_jsonable(result), "served": _served(request)}

"""Registered models per dataset, manual promotion and rollback of the champion alias."""
import logging

from fastapi import APIRouter, Path, Request

from ..deps import Models, Registry
from ..errors import Problem
from ..models import ModelManager
from ..registry_client import RegistryClient
from landmarks.jsonsafe import to_jsonable
from ..schemas import DATASET_PATTERN, ModelsResponse, PromoteRequest, problem_responses
from ..security import ApiKey

log = logging.getLogger("sdhrnet.service.models")
router = APIRouter(prefix="/models", tags=["models"])
DATASET = Path(pattern=DATASET_PATTERN, description="dataset whose registered model is meant, e.g. 300w")


def who(request: Request) -> str:
    """Who promoted, for the public history: the name of the API key (no part of the key), else the client
    address when the server runs without keys."""
    name = getattr(request.state, "api_key_name", None)
    if name:
        return f"api-key:{name}"
    return "api:" + (request.client.host if request.client else "unknown")


async def _registry(registry: RegistryClient, method: str, *args, **kwargs):
    try:
        return await registry.call(method, *args, **kwargs)
    except LookupError as exc:
        raise Problem(404, str(exc).strip("'\"") or "not found; GET /models lists what is registered") from None


def _served(models: ModelManager) -> dict:
    return {d: m.describe() for d, m in models.loaded.items()}


async def _follow(models: ModelManager, dataset: str) -> None:
    """Load the new champion now rather than at the next poll; a failure leaves the poller to retry."""
    try:
        await models.refresh(dataset)
    except Exception:
        log.warning("could not load the new champion of %s yet", dataset, exc_info=True)


@router.get("", response_model=ModelsResponse, responses=problem_responses(503),
            summary="Registered versions, aliases and metrics per dataset; what this server serves")
async def list_models(registry: Registry, models: Models):
    registered = await _registry(registry, "list_models")
    return {"models": to_jsonable(registered), "served": _served(models)}


@router.post("/{dataset}/promote", response_model=ModelsResponse, dependencies=[ApiKey],
             responses=problem_responses(401, 404, 409, 422, 503),
             summary="Make a version the champion of a dataset, or the most accurate version within a budget")
async def promote(request: Request, registry: Registry, models: Models, body: PromoteRequest,
                  dataset: str = DATASET):
    if body.version is not None:
        result = await _registry(registry, "promote", dataset, body.version, who(request))
    else:
        result = await _registry(registry, "promote_within", dataset, body.limits(), who(request))
    await _follow(models, dataset)
    return {"models": to_jsonable(result), "served": _served(models)}


@router.post("/{dataset}/rollback", response_model=ModelsResponse, dependencies=[ApiKey],
             responses=problem_responses(401, 404, 422, 503), summary="Give the champion alias back to the previous version")
async def rollback(request: Request, registry: Registry, models: Models, dataset: str = DATASET):
    result = await _registry(registry, "rollback", dataset, who(request))
    await _follow(models, dataset)
    return {"models": to_jsonable(result), "served": _served(models)}

"""Registered models per dataset, manual promotion and rollback of the champion alias."""
import logging
import re

from fastapi import APIRouter, Path, Request

from ..deps import Models, Registry
from ..errors import Problem
from ..models import ModelManager
from ..registry_client import RegistryClient
from landmarks.jsonsafe import to_jsonable
from ..schemas import DATASET_PATTERN, ChampionChangeResponse, ModelsResponse, PromoteRequest, problem_responses
from ..security import ApiKey

log = logging.getLogger("sdhrnet.service.models")
router = APIRouter(prefix="/models", tags=["models"])
DATASET = Path(pattern=DATASET_PATTERN, description="dataset whose registered model is meant, e.g. 300w")


# how who() named a client without a key before: `api:<address>`, still in the history recorded then
_ADDRESS_WHO = re.compile(r"api:\S+")


def who(request: Request) -> str:
    """Who promoted, for the public history: the name of the API key (no part of the key), else `api`. Never the
    client's address: the history is public (GET /models); the server log has the address."""
    name = getattr(request.state, "api_key_name", None)
    return f"api-key:{name}" if name else "api"


def _without_addresses(value):
    """`value` with the client addresses that older history entries (`who`) and version tags (`promoted_by`,
    `rolled_back_by`) hold replaced by `api`."""
    if isinstance(value, list):
        return [_without_addresses(v) for v in value]
    if not isinstance(value, dict):
        return value
    return {k: "api" if (k == "who" or k.endswith("_by")) and isinstance(v, str) and _ADDRESS_WHO.fullmatch(v)
            else _without_addresses(v) for k, v in value.items()}


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
    return {"models": _without_addresses(to_jsonable(registered)), "served": _served(models)}


async def _changed(request: Request, models: ModelManager, dataset: str, change: dict | None) -> dict:
    """The answer to promote and rollback. The champion is followed even when nothing changed: it may have been
    promoted elsewhere since the last poll, and `served` is to say what is served now."""
    if change is not None:
        client = request.client.host if request.client else "unknown"
        log.info("%s of %s: v%s -> v%s by %s from %s", change.get("action"), dataset, change.get("from"),
                 change.get("to"), change.get("who"), client)
    await _follow(models, dataset)
    change = to_jsonable(change)
    return {"change": change, "served": _served(models), "models": change}


@router.post("/{dataset}/promote", response_model=ChampionChangeResponse, dependencies=[ApiKey],
             responses=problem_responses(401, 404, 409, 422, 503),
             summary="Make a version the champion of a dataset, or the most accurate version within a budget; "
                     "a version that already is the champion changes nothing (change: null)")
async def promote(request: Request, registry: Registry, models: Models, body: PromoteRequest,
                  dataset: str = DATASET):
    if body.version is not None:
        change = await _registry(registry, "promote", dataset, body.version, who(request))
    else:
        change = await _registry(registry, "promote_within", dataset, body.limits(), who(request))
    return await _changed(request, models, dataset, change)


@router.post("/{dataset}/rollback", response_model=ChampionChangeResponse, dependencies=[ApiKey],
             responses=problem_responses(401, 404, 409, 422, 503),
             summary="Give the champion alias back to the previous version; 409 when there is none")
async def rollback(request: Request, registry: Registry, models: Models, dataset: str = DATASET):
    change = await _registry(registry, "rollback", dataset, who(request))
    return await _changed(request, models, dataset, change)

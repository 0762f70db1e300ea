"""Liveness, readiness and Prometheus metrics."""
from fastapi import APIRouter
from fastapi.responses import Response

from ..deps import Metrics, Models, Registry, Settings
from ..errors import problem_response
from ..schemas import problem_responses

router = APIRouter(tags=["health"])


@router.get("/livez", summary="The process answers")
async def livez():
    return {"status": "ok"}


@router.get("/readyz", summary="Ready once a model is loaded; 'degraded' while the registry is unreachable",
            responses={503: {**problem_responses(503)[503], "description": "no model loaded yet"}})
async def readyz(models: Models, registry_client: Registry, settings: Settings):
    """A loaded model keeps the server ready (200) when the registry goes away, because /align still works;
    the body then says `degraded`: no champion following, promotion or GET /models until it is back."""
    loaded = models.loaded
    registry = registry_client.health()
    if not loaded:
        return problem_response(503, "no model is loaded yet: the champion of "
                                     f"{settings.preload_list or ['300w']} is loading or "
                                     "none is promoted (POST /models/{dataset}/promote)", headers={"Retry-After": "5"},
                                **registry)
    status = "ready" if registry["registry"] == "reachable" else "degraded"
    return {"status": status, **registry, "models": {d: m.describe() for d, m in loaded.items()}}


@router.get("/metrics", summary="Prometheus metrics", response_class=Response,
            responses={200: {"content": {"text/plain": {}}}})
async def metrics(service_metrics: Metrics):
    body, content_type = service_metrics.render()
    return Response(body, media_type=content_type)

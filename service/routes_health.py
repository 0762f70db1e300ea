"""Liveness, readiness and Prometheus metrics."""
from fastapi import APIRouter, Request
from fastapi.responses import Response

from .errors import problem_response

router = APIRouter(tags=["health"])


@router.get("/livez", summary="The process answers")
async def livez():
    return {"status": "ok"}


@router.get("/readyz", summary="Ready once a model is loaded",
            responses={503: {"description": "no model loaded yet", "content": {"application/problem+json": {}}}})
async def readyz(request: Request):
    loaded = request.app.state.models.loaded
    if not loaded:
        return problem_response(503, "no model is loaded yet: the champion of "
                                     f"{request.app.state.service_settings.preload_list or ['300w']} is loading or "
                                     "none is promoted (POST /models/{dataset}/promote)", headers={"Retry-After": "5"})
    return {"status": "ready", "models": {d: m.describe() for d, m in loaded.items()}}


@router.get("/metrics", summary="Prometheus metrics", response_class=Response,
            responses={200: {"content": {"text/plain": {}}}})
async def metrics(request: Request):
    body, content_type = request.app.state.metrics.render()
    return Response(body, media_type=content_type)

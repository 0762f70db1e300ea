"""Edits to the schema FastAPI builds, so that openapi.yaml describes what the app sends:
- routes that read their own body (JSON or multipart: /align, /evaluate) describe it in `openapi_extra` with
  pydantic's schema, which keeps nested models in `$defs` beside the body while its `$ref`s point at
  `#/components/schemas/...`: those definitions move into the components so that every reference resolves;
- FastAPI files an error's model under application/json, while every error is sent as application/problem+json;
- the request limits (service.limits) answer before any route: 431 anywhere, 413 and 408 where a body is read."""
from fastapi import FastAPI

from .schemas import PROBLEM_DESCRIPTIONS

PROBLEM = "application/problem+json"
LIMITS_ANY_REQUEST = (431,)
LIMITS_WITH_BODY = (408, 413)


def _operations(schema: dict):
    for path_item in schema.get("paths", {}).values():
        for operation in path_item.values():
            if isinstance(operation, dict):
                yield operation


def _problem(code: int) -> dict:
    return {"description": PROBLEM_DESCRIPTIONS[code],
            "content": {PROBLEM: {"schema": {"$ref": "#/components/schemas/ProblemDetails"}}}}


def describe_as_sent(app: FastAPI) -> None:
    build = app.openapi

    def openapi() -> dict:
        if app.openapi_schema is None:
            schema = build()  # FastAPI caches it in app.openapi_schema; this edits that copy once
            components = schema.setdefault("components", {}).setdefault("schemas", {})
            for operation in _operations(schema):
                for media in operation.get("requestBody", {}).get("content", {}).values():
                    components.update(media.get("schema", {}).pop("$defs", {}))
                responses = operation.setdefault("responses", {})
                for code, response in responses.items():
                    content = response.get("content", {})
                    if code >= "400" and PROBLEM in content and "application/json" in content:
                        content[PROBLEM] = content.pop("application/json")
                limits = LIMITS_ANY_REQUEST + (LIMITS_WITH_BODY if "requestBody" in operation else ())
                for code in sorted(limits):
                    responses.setdefault(str(code), _problem(code))
        return app.openapi_schema

    app.openapi = openapi

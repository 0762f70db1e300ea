"""Routes that read their own body (JSON or multipart: /align, /evaluate) describe it in `openapi_extra` with
pydantic's schema, which keeps nested models in `$defs` beside the body while its `$ref`s point at
`#/components/schemas/...`. Moving those definitions into the components makes every reference resolve."""
from fastapi import FastAPI


def hoist_body_defs(app: FastAPI) -> None:
    build = app.openapi

    def openapi() -> dict:
        if app.openapi_schema is None:
            schema = build()  # FastAPI caches it in app.openapi_schema; this edits that copy once
            components = schema.setdefault("components", {}).setdefault("schemas", {})
            for path_item in schema.get("paths", {}).values():
                for operation in path_item.values():
                    if isinstance(operation, dict):
                        for media in operation.get("requestBody", {}).get("content", {}).values():
                            components.update(media.get("schema", {}).pop("$defs", {}))
        return app.openapi_schema

    app.openapi = openapi

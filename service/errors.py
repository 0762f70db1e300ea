"""RFC 9457 problem details for every error the API returns, so that clients parse one shape."""
import json
import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from .redact import redact

log = logging.getLogger("sdhrnet.service")

PROBLEM_TYPE = "application/problem+json"
TITLES = {
    400: "Bad request", 401: "Missing or invalid API key", 404: "Not found", 405: "Method not allowed",
    408: "Request timeout", 431: "Request headers too large",
    409: "Conflict", 413: "Request too large", 415: "Unsupported media type", 422: "Invalid input",
    500: "Internal error", 503: "Service unavailable",
}


class Problem(Exception):
    """An error whose message tells the client what to fix."""

    def __init__(self, status: int, detail: str, *, title: str | None = None, headers: dict | None = None, **extra):
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.title = title or TITLES.get(status, "Error")
        self.headers = headers or {}
        self.extra = extra


class InputError(Problem, ValueError):
    def __init__(self, detail: str, status: int = 422, **extra):
        super().__init__(status, detail, **extra)


class NoModelError(Problem):
    def __init__(self, dataset: str):
        super().__init__(
            503,
            f"no model is promoted for dataset '{dataset}'. Train one (POST /jobs/slim then /jobs/distill with "
            f"dataset '{dataset}') or promote a registered version (POST /models/{dataset}/promote "
            f'{{"version": N}}); GET /models lists what is registered.',
            title="No model for this dataset", headers={"Retry-After": "30"}, dataset=dataset)


def first_error(exc, field: str = "") -> str:
    """The first problem pydantic found, as 'where: what' (its JSON parser's messages name no Python internals);
    `field`: the name of the value validated, put first in 'where'."""
    errors = getattr(exc, "errors", None)
    if callable(errors):
        try:
            e = errors()[0]
            where = ".".join(map(str, ((field,) if field else ()) + tuple(e.get("loc", ()))))
            return f"{where}: {e.get('msg')}" if where else str(e.get("msg"))
        except Exception:
            pass
    return str(exc).splitlines()[0]


def problem_response(status: int, detail: str, title: str | None = None, headers: dict | None = None,
                     instance: str | None = None, **extra) -> JSONResponse:
    # messages may quote the operator's paths and URLs; clients get none of them
    body = {"type": "about:blank", "title": title or TITLES.get(status, "Error"), "status": status,
            "detail": redact(detail)}
    if instance:
        body["instance"] = instance
    body.update(extra)
    return JSONResponse(body, status_code=status, headers=headers, media_type=PROBLEM_TYPE)


def _location(loc) -> str:
    parts = [str(p) for p in loc if p not in ("body",)]
    return ".".join(parts) or "body"


def _invalid_json(request: Request, error: dict, document) -> str:
    """FastAPI's "JSON decode error" (located by a character offset) said as /align says it: where the JSON
    breaks, and the body that was expected (the examples of the route's request model, service.schemas)."""
    position = (tuple(error.get("loc", ())) or (None,))[-1]
    where = ""
    if isinstance(position, int) and isinstance(document, str):
        line = document.count("\n", 0, position) + 1
        column = position - document.rfind("\n", 0, position)
        where = f" at line {line} column {column}"
    reason = str((error.get("ctx") or {}).get("error") or "").strip()
    model = getattr(getattr(getattr(request.scope.get("route"), "body_field", None), "field_info", None),
                    "annotation", None)
    extra = (getattr(model, "model_config", None) or {}).get("json_schema_extra")
    examples = extra.get("examples") if isinstance(extra, dict) else None
    expected = (f"the JSON body must be like {' or '.join(json.dumps(e) for e in examples)}" if examples
                else "the body must be JSON as the API docs (/docs) show")
    return f"{expected}: invalid JSON{where}" + (f" ({reason[0].lower()}{reason[1:]})" if reason else "")


def _allowed_methods(request: Request) -> list[str]:
    from .route_table import lookup

    found = lookup(request.app, request.url.path, request.method)
    return sorted(found[1]) if found else []


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(Problem)
    async def _problem(request: Request, exc: Problem):
        return problem_response(exc.status, exc.detail, exc.title, exc.headers, request.url.path, **exc.extra)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError):
        invalid_json = next((e for e in exc.errors() if e.get("type") == "json_invalid"), None)
        if invalid_json is not None:
            return problem_response(422, _invalid_json(request, invalid_json, exc.body), "Invalid input",
                                    instance=request.url.path,
                                    errors=[{"loc": "body", "msg": "invalid JSON", "type": "json_invalid"}])
        errors = [{"loc": _location(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")}
                  for e in exc.errors()]
        detail = "; ".join(f"{e['loc']}: {e['msg']}" for e in errors) or "the request does not match the schema"
        return problem_response(422, detail, "Invalid input", instance=request.url.path, errors=errors)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException):
        detail = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
        if exc.status_code == 400:
            # FastAPI's 400 for bodies it cannot parse (e.g. invalid UTF-8); the API reports input errors as 422
            return problem_response(422, f"{detail}: send a UTF-8 JSON body as the API docs show",
                                    instance=request.url.path)
        headers = dict(getattr(exc, "headers", None) or {})
        if exc.status_code == 405:
            # Starlette lists only the first matching route's methods; a path can have several routes. Paths
            # outside the schema (the web page) keep Starlette's list.
            allowed = _allowed_methods(request) or sorted(m.strip() for m in headers.get("Allow", "").split(",")
                                                          if m.strip())
            headers["Allow"] = ", ".join(allowed)
            detail = f"{request.method} is not supported here; use {' or '.join(allowed)}"
        return problem_response(exc.status_code, detail, headers=headers, instance=request.url.path)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception):
        log.exception("unhandled error on %s", request.url.path)
        return problem_response(500, "internal error; the server log has the details", instance=request.url.path)

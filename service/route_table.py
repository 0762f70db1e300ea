"""Which documented route a path belongs to, and the methods it allows: used for 405 Allow headers and to label
metrics of requests answered before routing (413).

Matching is Starlette's own (`route.matches(scope)`), over FastAPI's public `fastapi.routing.iter_route_contexts`:
since FastAPI 0.137 `app.router.routes` holds a private `_IncludedRouter` per included router, whose child routes
carry their paths without the include prefix; `iter_route_contexts` flattens those into one context per endpoint,
with the full `path_format`, `methods` and a working `matches`. Only routes in the API schema count (as the
OpenAPI paths did before): the web page, the docs and /static keep Starlette's own answers."""
from fastapi.routing import iter_route_contexts
from starlette.routing import Match


def _documented(app):
    for route in iter_route_contexts(app.router.routes):
        if getattr(route, "include_in_schema", False) and getattr(route, "methods", None):
            yield route


def _allowed(methods) -> set[str]:
    allowed = {m.upper() for m in methods}
    if "GET" in allowed:
        allowed.add("HEAD")
    return allowed


def lookup(app, path: str, method: str = "GET") -> tuple[str, frozenset[str]] | None:
    """-> (template, allowed methods) for a concrete path, or None when no documented route has it. The template
    is the route Starlette would pick (a full match, else the first whose path matches); the methods are those of
    every route with that template (a path can have several routes: GET and DELETE /jobs/{job_id})."""
    scope = {"type": "http", "path": path, "root_path": "", "method": method.upper()}
    routes = list(_documented(app))
    chosen = None
    for route in routes:
        match, _ = route.matches(scope)
        if match == Match.FULL:
            chosen = route
            break
        if match == Match.PARTIAL and chosen is None:
            chosen = route
    if chosen is None:
        return None
    template = chosen.path_format
    methods = set()
    for route in routes:
        if route.path_format == template:
            methods |= _allowed(route.methods)
    return template, frozenset(methods)

"""Path templates and their methods, read from the OpenAPI paths (FastAPI nests included routers in
private wrappers, so the schema is the stable public view). Used for 405 Allow headers and to label
metrics of requests answered before routing (413)."""
import re

_CACHE_ATTR = "_sdhrnet_route_table"


def _table(app) -> list[tuple[re.Pattern, str, frozenset[str]]]:
    table = getattr(app.state, _CACHE_ATTR, None)
    if table is None:
        table = []
        for template, operations in app.openapi().get("paths", {}).items():
            pattern = re.compile("^" + re.sub(r"\\\{[^/]+?\\\}", "[^/]+", re.escape(template)) + "$")
            methods = {m.upper() for m in operations if m.lower() in
                       ("get", "post", "put", "patch", "delete", "head", "options")}
            if "GET" in methods:
                methods.add("HEAD")
            table.append((pattern, template, frozenset(methods)))
        setattr(app.state, _CACHE_ATTR, table)
    return table


def lookup(app, path: str) -> tuple[str, frozenset[str]] | None:
    """-> (template, allowed methods) for a concrete path, or None when no documented route has it."""
    for pattern, template, methods in _table(app):
        if pattern.match(path):
            return template, methods
    return None

"""Server locations never reach clients: error details and job statuses pass through `redact` at the API
boundary, so a message written for the operator (a DatasetError naming an upload folder, an MLflow error
quoting its URL and query, a path the worker expanded from `~`) cannot show the layout of this machine."""
import re
from functools import lru_cache
from pathlib import Path

from sdhrnet.settings import get_settings


@lru_cache(maxsize=1)
def _pattern(home: str, tracking_uri: str) -> tuple[re.Pattern, dict[str, str]]:
    names: dict[str, str] = {}
    if tracking_uri:
        names[tracking_uri.rstrip("/")] = "the MLflow server"
    for spelling in {home, str(Path(home).resolve())}:
        names[spelling] = "$SDHRNET_HOME"
    names.setdefault(str(Path.home()), "~")
    # longest first, so that a folder inside another is named by the more specific name; never "/" (HOME=/
    # in some containers). A URL swallows its path and query, a folder only whole path components.
    names = {k: names[k] for k in sorted(names, key=len, reverse=True) if len(k) > 1}
    parts = [re.escape(k) + (r"\S*" if v == "the MLflow server" else r"(?![\w.-])") for k, v in names.items()]
    return re.compile("|".join(parts)), names


def redact(text: str) -> str:
    settings = get_settings()
    pattern, names = _pattern(str(settings.home), settings.tracking_uri or "")
    if not names:
        return text

    def name_of(match: re.Match) -> str:
        return next(v for k, v in names.items() if match.group(0).startswith(k))
    return pattern.sub(name_of, text)


def redact_all(value):
    """`redact` on every string inside JSON-like data."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {k: redact_all(v) for k, v in value.items()}
    if isinstance(value, list):
        return [redact_all(v) for v in value]
    return value

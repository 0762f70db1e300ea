"""X-API-Key check; keys come from SDHRNET_API_KEYS (comma-separated). No keys configured = open."""
import hmac

from fastapi import Depends, Request, Security
from fastapi.security import APIKeyHeader

from .errors import Problem

api_key_header = APIKeyHeader(name="X-API-Key", auto_error=False,
                              description="one of the keys in SDHRNET_API_KEYS (comma-separated)")


def _check(request: Request, key: str | None) -> None:
    keys = request.app.state.api_keys
    if not keys:
        return
    if not key:
        raise Problem(401, "this endpoint needs an API key: send it in the X-API-Key header",
                      headers={"WWW-Authenticate": "X-API-Key"})
    # constant-time comparison so a key cannot be guessed byte by byte from timings
    if not any(hmac.compare_digest(key.encode(), k.encode()) for k in keys):
        raise Problem(401, "the X-API-Key header holds an unknown key; use one listed in SDHRNET_API_KEYS",
                      headers={"WWW-Authenticate": "X-API-Key"})


def require_api_key(request: Request, key: str | None = Security(api_key_header)) -> None:
    _check(request, key)


def require_api_key_for_align(request: Request, key: str | None = Security(api_key_header)) -> None:
    if request.app.state.service_settings.align_requires_key:
        _check(request, key)


ApiKey = Depends(require_api_key)
AlignKey = Depends(require_api_key_for_align)

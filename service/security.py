"""X-API-Key check; keys come from SDHRNET_API_KEYS (`name:key,...`). No keys configured = open. The name of
the matching key is left in `request.state.api_key_name`: who acted, without any part of the key."""
import hmac
from collections.abc import Mapping

from fastapi import Depends, Request, Security
from fastapi.security import APIKeyHeader

from sdhrnet.settings import parse_api_keys

from .deps import ApiKeys, Settings
from .errors import Problem

api_key_header = APIKeyHeader(name="X-API-Key", auto_error=False,
                              description="the key of one `name:key` entry of SDHRNET_API_KEYS (a bare key where it lists bare keys)")


def keys_by_name(keys) -> dict[str, str]:
    """A name -> key mapping as is; bare keys (a set, in tests) are named as SDHRNET_API_KEYS would name them."""
    return dict(keys) if isinstance(keys, Mapping) else parse_api_keys(sorted(keys))


def _check(request: Request, keys: dict[str, str], key: str | None) -> None:
    if not keys:
        return
    if not key:
        raise Problem(401, "this endpoint needs an API key: send it in the X-API-Key header",
                      headers={"WWW-Authenticate": "X-API-Key"})
    # constant-time comparisons, all of them, so a key cannot be guessed byte by byte from timings
    matches = [name for name, k in keys.items() if hmac.compare_digest(key.encode(), k.encode())]
    if not matches:
        raise Problem(401, "the X-API-Key header holds an unknown key; use one listed in SDHRNET_API_KEYS",
                      headers={"WWW-Authenticate": "X-API-Key"})
    request.state.api_key_name = matches[0]


def require_api_key(request: Request, keys: ApiKeys, key: str | None = Security(api_key_header)) -> None:
    _check(request, keys, key)


def require_api_key_for_align(request: Request, keys: ApiKeys, settings: Settings,
                              key: str | None = Security(api_key_header)) -> None:
    # a key sent where none is needed is still checked: a client with a wrong key hears it on its first call, not
    # on its first job
    if settings.align_requires_key or key:
        _check(request, keys, key)


ApiKey = Depends(require_api_key)
AlignKey = Depends(require_api_key_for_align)

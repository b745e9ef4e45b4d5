"""API keys with roles. A key is sent in the ``X-API-Key`` header; keys come from the settings only.

- ``reviewer``: predict (when predictions are not open), feedback;
- ``admin``: all of that, plus model reload and the feedback export.

Missing key: 401. Unknown key: 401. Known key without the role: 403. The messages say what to do and never echo
the key; the logs never see it (see ``KeyRedactingFilter``).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from dataclasses import dataclass

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import APIKeyHeader

from .settings import ROLE_RANK, Role, Settings

HEADER = "X-API-Key"
api_key_header = APIKeyHeader(name=HEADER, auto_error=False, scheme_name="ApiKey",
                              description="API key: role reviewer (predict, feedback) or admin (also reload and "
                                          "feedback export).")


@dataclass(frozen=True)
class Principal:
    role: Role | None  # None: anonymous (an open endpoint)
    key_id: str | None = None


def key_id(key: str) -> str:
    """A short, stable fingerprint of a key for the feedback rows and logs (not reversible to the key)."""
    return hashlib.sha256(b"laari-api-key\x00" + key.encode("utf-8")).hexdigest()[:12]


def lookup(settings: Settings, key: str) -> Role | None:
    """The key's role, comparing against every configured key in constant time."""
    found = None
    given = key.encode("utf-8")
    for candidate, role in settings.api_keys.items():
        if hmac.compare_digest(given, candidate.get_secret_value().encode("utf-8")):
            found = role
    return found


def _unauthorized(message: str) -> HTTPException:
    return HTTPException(status.HTTP_401_UNAUTHORIZED, detail=message, headers={"WWW-Authenticate": HEADER})


def require(role: Role, *, open_setting: str | None = None):
    """A dependency: the request must carry a key with at least ``role`` (unless the boolean setting
    ``open_setting`` is on and no key is sent)."""

    def dependency(request: Request, key: str | None = Depends(api_key_header)) -> Principal:
        settings: Settings = request.app.state.settings
        if not key:
            if open_setting and getattr(settings, open_setting):
                return Principal(None)
            if not settings.api_keys:
                raise _unauthorized(f"API key required (role {role.value}), and this service has no keys "
                                    "configured: set LAARI_API_KEYS, e.g. 'longrandomkey:reviewer'")
            raise _unauthorized(f"API key required (role {role.value}): send it in the {HEADER} header")
        found = lookup(settings, key)
        if found is None:
            raise _unauthorized(f"API key not recognised: check the {HEADER} header")
        if ROLE_RANK[found] < ROLE_RANK[role]:
            raise HTTPException(status.HTTP_403_FORBIDDEN,
                                detail=f"this needs role {role.value}; your key has role {found.value}")
        return Principal(found, key_id(key))

    return dependency


def client_id(request: Request, principal: Principal) -> str:
    """Whom the per-client limits count: the API key (by fingerprint), else the client's address. (Behind a
    reverse proxy every anonymous client has the proxy's address: send keys, or let the proxy limit.)"""
    if principal.key_id:
        return "key:" + principal.key_id
    host = request.client.host if request.client else "unknown"
    return "addr:" + host


class KeyRedactingFilter(logging.Filter):
    """Replaces any configured API key in a log record's message and arguments by ***."""

    def __init__(self, keys):
        super().__init__()
        self.keys = sorted((k for k in keys if k), key=len, reverse=True)

    def _clean(self, value):
        if isinstance(value, str):
            for k in self.keys:
                if k in value:
                    value = value.replace(k, "***")
        return value

    def filter(self, record: logging.LogRecord) -> bool:
        if not self.keys:
            return True
        record.msg = self._clean(record.msg) if isinstance(record.msg, str) else record.msg
        if isinstance(record.args, tuple):
            record.args = tuple(self._clean(a) for a in record.args)
        elif isinstance(record.args, dict):
            record.args = {k: self._clean(v) for k, v in record.args.items()}
        return True

"""API keys: ``Authorization: Bearer <key>`` when ``auth_enabled``; the ``admin_key`` setting sees all jobs.

Stored keys are verified by the jobs layer (SHA-256 of the secret; only a short prefix kept in clear).
The resolved :class:`Principal` is put on ``scope["state"]["principal"]``; routes pass
``principal.owner`` to the job service, so a job of another key is a 404.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from typing import Any

#: Paths that never need a key (liveness, readiness, API docs).
PUBLIC_PATHS = frozenset({"/", "/health", "/ready", "/docs", "/redoc", "/openapi.json"})
STUDIO_ASSETS_PATH = "/studio"
#: Where the Swagger UI and ReDoc assets are served from the package (``fastapi-offline``): public too.
DOCS_ASSETS_PATH = "/docs/assets"


def is_public(path: str) -> bool:
    """True for :data:`PUBLIC_PATHS` and the static assets of the docs and of the Studio page."""
    return path in PUBLIC_PATHS or path.startswith((DOCS_ASSETS_PATH + "/", STUDIO_ASSETS_PATH + "/"))


@dataclass(frozen=True)
class Principal:
    """Who is calling. ``owner`` is what the job service filters on: None = sees all jobs."""

    key_id: str | None
    owner: str | None
    is_admin: bool


ANONYMOUS = Principal(key_id=None, owner=None, is_admin=False)
ADMIN = Principal(key_id="admin", owner=None, is_admin=True)


class AuthError(Exception):
    """Missing, malformed, unknown or revoked key (-> 401)."""


def bearer_token(authorization: str | None) -> str:
    """The token of an ``Authorization: Bearer <token>`` header. Raises AuthError."""
    if not authorization:
        raise AuthError("This route needs an API key: send 'Authorization: Bearer <key>'.")
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise AuthError("The Authorization header must be 'Bearer <key>'.")
    return token.strip()


def resolve_principal(settings: Any, service: Any, authorization: str | None) -> Principal:
    """Check the caller's key when ``auth_enabled`` (blocking: queries the database). Raises AuthError."""
    token = bearer_token(authorization)
    admin = settings.admin_key.get_secret_value() if settings.admin_key is not None else None
    if admin and hmac.compare_digest(token.encode(), admin.encode()):
        return ADMIN
    key = service.keys.verify(token)
    if key is None:
        raise AuthError("The API key is unknown or revoked.")
    return Principal(key_id=str(key.id), owner=str(key.id), is_admin=False)

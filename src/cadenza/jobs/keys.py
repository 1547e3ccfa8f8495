"""API keys: only the SHA-256 of a secret and its first 12 characters are stored."""

from __future__ import annotations

import hashlib
import hmac
import secrets

from sqlalchemy import Engine, select

from cadenza.db.models import ApiKey, utcnow
from cadenza.db.session import read_tx, write_tx
from cadenza.jobs.views import KeyView

KEY_PREFIX = "cdz_"


def _view(key: ApiKey) -> KeyView:
    return KeyView(id=key.id, name=key.name, prefix=key.prefix, created_at=key.created_at, revoked_at=key.revoked_at)


class ApiKeys:
    """The API keys stored in the database of ``engine``. Thread-safe."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def create(self, name: str) -> tuple[str, KeyView]:
        """Create a key; returns ``(secret, key)``. The secret is shown only here. Raises ValueError for
        an empty or over-long name."""
        name = name.strip()
        if not name or len(name) > 200:
            raise ValueError("key name must be 1-200 characters")
        secret = KEY_PREFIX + secrets.token_urlsafe(32)
        key = ApiKey(
            id="key_" + secrets.token_hex(8),
            name=name,
            prefix=secret[:12],
            sha256=hashlib.sha256(secret.encode()).hexdigest(),
            created_at=utcnow(),
        )
        with write_tx(self.engine) as session:
            session.add(key)
        return secret, _view(key)

    def list(self) -> list[KeyView]:
        with read_tx(self.engine) as session:
            return [_view(k) for k in session.scalars(select(ApiKey).order_by(ApiKey.created_at))]

    def revoke(self, key_id: str) -> KeyView:
        """Revoke a key (idempotent). Raises KeyError for an unknown id."""
        with write_tx(self.engine) as session:
            key = session.get(ApiKey, key_id)
            if key is None:
                raise KeyError(f"no API key {key_id}")
            if key.revoked_at is None:
                key.revoked_at = utcnow()
            return _view(key)

    def verify(self, secret: str) -> KeyView | None:
        """The key whose secret this is, or None if unknown or revoked."""
        digest = hashlib.sha256(secret.encode()).hexdigest()
        with read_tx(self.engine) as session:
            key = session.scalar(select(ApiKey).where(ApiKey.sha256 == digest))
            if key is None or not hmac.compare_digest(key.sha256, digest) or key.revoked_at is not None:
                return None
            return _view(key)

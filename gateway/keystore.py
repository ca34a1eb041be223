"""The gateway's signing keys, kept in the database so every replica shares them.

The first process to start creates the key. The private half is sealed with
SWITCHBOARD_SECRET_KEY (`policies.keys`) and never logged; the public halves
are published at `/.well-known/jwks.json` and serve as the `KeySource` for
verifying the gateway's own tokens.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import insert, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.db import create_engine, upgrade
from gateway.tables import signing_keys
from policies.keys import SigningKey, open_private_key, seal_private_key

# A replica that sees an unknown kid re-reads the table, but not more often than this.
_RELOAD_MIN_SECONDS = 5.0


class KeyStore:
    def __init__(self, engine: AsyncEngine, secret: str | None) -> None:
        self._engine = engine
        self._secret = secret
        self._public: dict[str, Mapping[str, Any]] = {}
        self._active: SigningKey | None = None
        self._loaded_at = 0.0
        self._lock = asyncio.Lock()

    async def active_key(self) -> SigningKey:
        """The key that signs now; created on first use."""
        if self._active is None:
            async with self._lock:
                if self._active is None:
                    self._active = await self._load_or_create()
        return self._active

    async def public_jwks(self) -> dict[str, list[Mapping[str, Any]]]:
        await self._reload()
        return {"keys": list(self._public.values())}

    async def get(self, kid: str) -> Mapping[str, Any] | None:
        """`KeySource` for the gateway's own tokens."""
        if kid not in self._public and time.monotonic() - self._loaded_at > _RELOAD_MIN_SECONDS:
            await self._reload()
        return self._public.get(kid)

    async def _load_or_create(self) -> SigningKey:
        stored = await self._newest_private()
        if stored is None:
            key = SigningKey.generate()
            try:
                async with self._engine.begin() as conn:
                    await conn.execute(
                        insert(signing_keys).values(
                            kid=key.kid,
                            alg=key.alg,
                            private_key=seal_private_key(key.private_key_pem, self._secret),
                            public_jwk=key.public_jwk,
                            created_at=datetime.now(UTC),
                        )
                    )
            except IntegrityError:  # pragma: no cover - a 2^-256 kid collision
                pass
            stored = await self._newest_private()
            assert stored is not None
        await self._reload()
        return SigningKey.from_pem(open_private_key(stored, self._secret))

    async def _newest_private(self) -> str | None:
        async with self._engine.connect() as conn:
            value = await conn.scalar(
                select(signing_keys.c.private_key)
                .where(_not_retired())
                .order_by(signing_keys.c.created_at.desc(), signing_keys.c.kid)
                .limit(1)
            )
        return str(value) if value is not None else None

    async def _reload(self) -> None:
        async with self._engine.connect() as conn:
            rows = (
                await conn.execute(
                    select(signing_keys.c.kid, signing_keys.c.public_jwk).where(_not_retired())
                )
            ).all()
        self._public = {row.kid: dict(row.public_jwk) for row in rows}
        self._loaded_at = time.monotonic()


async def load_active_key(database_url: str, secret: str | None) -> SigningKey:
    """The signing key, for a process without a running app (the CLI, tools):
    migrates the database if needed, creates the key on first use."""
    engine = create_engine(database_url)
    try:
        await upgrade(engine)
        return await KeyStore(engine, secret).active_key()
    finally:
        await engine.dispose()


def _not_retired() -> Any:
    return or_(signing_keys.c.retires_at.is_(None), signing_keys.c.retires_at > datetime.now(UTC))

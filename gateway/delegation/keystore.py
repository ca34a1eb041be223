"""The gateway's signing keys, kept in the database so every replica shares them.

The first process to start creates the key. The private half is sealed with
SWITCHBOARD_SECRET_KEY (`policies.keys`) and never logged; the public halves
are published at `/.well-known/jwks.json` and serve as the `KeySource` for
verifying the gateway's own tokens.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import insert, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.storage.db import migrated
from gateway.storage.tables import signing_keys
from policies.keys import SigningKey, open_private_key, seal_private_key
from registry.tables import as_utc

# A replica that sees an unknown kid re-reads the table, but not more often than this.
_RELOAD_MIN_SECONDS = 5.0
# How soon a replica starts signing with a key rotated in by another process
# (the default of the `key_recheck_seconds` setting).
ACTIVE_KEY_RECHECK_SECONDS = 10.0

security = logging.getLogger("switchboard.security")


@dataclass(frozen=True)
class KeyInfo:
    kid: str
    alg: str
    created_at: datetime
    retires_at: datetime | None
    active: bool


class KeyStore:
    def __init__(
        self,
        engine: AsyncEngine,
        secret: str | None,
        recheck_seconds: float = ACTIVE_KEY_RECHECK_SECONDS,
    ) -> None:
        self._engine = engine
        self._secret = secret
        self._recheck_seconds = recheck_seconds
        self._public: dict[str, Mapping[str, Any]] = {}
        self._retires: dict[str, datetime] = {}
        self._active: SigningKey | None = None
        self._active_checked = 0.0
        self._loaded_at = 0.0
        self._missed_at = float("-inf")
        self._lock = asyncio.Lock()

    async def active_key(self) -> SigningKey:
        """The key that signs now: the newest unretired one, created on first use.

        Re-checked every few seconds so that a rotation made by another
        process (`switchboard keys rotate`) reaches every replica.
        """
        active = self._active
        if active is not None and time.monotonic() - self._active_checked < self._recheck_seconds:
            return active
        async with self._lock:
            if self._active is None or (
                time.monotonic() - self._active_checked >= self._recheck_seconds
            ):
                self._active = await self._load_or_create(self._active)
                self._active_checked = time.monotonic()
            return self._active

    async def rotate(self, retire_after_seconds: float) -> tuple[SigningKey, list[str]]:
        """Start signing with a new key; the old ones stay published (so tokens
        they signed still verify) for ``retire_after_seconds`` more."""
        key = SigningKey.generate()
        now = datetime.now(UTC)
        retire_at = now + timedelta(seconds=retire_after_seconds)
        async with self._engine.begin() as conn:
            old = (
                (
                    await conn.execute(
                        select(signing_keys.c.kid).where(signing_keys.c.retires_at.is_(None))
                    )
                )
                .scalars()
                .all()
            )
            await conn.execute(
                update(signing_keys)
                .where(signing_keys.c.retires_at.is_(None))
                .values(retires_at=retire_at)
            )
            await conn.execute(
                insert(signing_keys).values(
                    kid=key.kid,
                    alg=key.alg,
                    private_key=seal_private_key(key.private_key_pem, self._secret),
                    public_jwk=key.public_jwk,
                    created_at=now,
                )
            )
        self._active = key
        self._active_checked = time.monotonic()
        await self._reload()
        security.warning(
            "signing key rotated: %s signs now; %s retire at %s",
            key.kid,
            ", ".join(old) or "no other key",
            retire_at.isoformat(),
        )
        return key, list(old)

    async def list_keys(self) -> list[KeyInfo]:
        async with self._engine.connect() as conn:
            rows = (
                await conn.execute(
                    select(
                        signing_keys.c.kid,
                        signing_keys.c.alg,
                        signing_keys.c.created_at,
                        signing_keys.c.retires_at,
                    ).order_by(signing_keys.c.created_at.desc())
                )
            ).all()
        now = datetime.now(UTC)
        return [
            KeyInfo(
                kid=row.kid,
                alg=row.alg,
                created_at=as_utc(row.created_at),
                retires_at=as_utc(row.retires_at) if row.retires_at else None,
                active=row.retires_at is None,
            )
            for row in rows
            if row.retires_at is None or as_utc(row.retires_at) > now
        ]

    async def public_jwks(self) -> dict[str, list[Mapping[str, Any]]]:
        await self._reload()
        return {"keys": list(self._public.values())}

    async def get(self, kid: str) -> Mapping[str, Any] | None:
        """`KeySource` for the gateway's own tokens."""
        # Re-read on an unknown kid (a new key from another replica), and
        # periodically anyway, so a key retired elsewhere stops verifying here.
        # Unknown kids re-read at most once per _RELOAD_MIN_SECONDS, counted
        # from the last re-read a miss caused -- not from the last read: two
        # replicas starting on an empty database each create a key, and the
        # first token signed with the other's must not be refused for seconds.
        now = time.monotonic()
        missed = kid not in self._public and now - self._missed_at > _RELOAD_MIN_SECONDS
        if missed or now - self._loaded_at > ACTIVE_KEY_RECHECK_SECONDS:
            if missed:
                self._missed_at = now
            await self._reload()
        retires = self._retires.get(kid)
        if retires is not None and retires <= datetime.now(UTC):
            return None  # retired since the last read: not a second longer
        return self._public.get(kid)

    async def _load_or_create(self, current: SigningKey | None = None) -> SigningKey:
        if current is not None and await self._newest_kid() == current.kid:
            return current  # unchanged: no private key read, unsealed or parsed
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

    async def _newest_kid(self) -> str | None:
        return await self._newest(signing_keys.c.kid)

    async def _newest_private(self) -> str | None:
        return await self._newest(signing_keys.c.private_key)

    async def _newest(self, column: Any) -> str | None:
        """``column`` of the signing key: the newest one not being retired."""
        async with self._engine.connect() as conn:
            value = await conn.scalar(
                select(column)
                .where(signing_keys.c.retires_at.is_(None))
                .order_by(signing_keys.c.created_at.desc(), signing_keys.c.kid)
                .limit(1)
            )
        return str(value) if value is not None else None

    async def _reload(self) -> None:
        async with self._engine.connect() as conn:
            rows = (
                await conn.execute(
                    select(
                        signing_keys.c.kid, signing_keys.c.public_jwk, signing_keys.c.retires_at
                    ).where(_not_retired())
                )
            ).all()
        self._public = {row.kid: dict(row.public_jwk) for row in rows}
        self._retires = {row.kid: as_utc(row.retires_at) for row in rows if row.retires_at}
        self._loaded_at = time.monotonic()


async def load_active_key(database_url: str, secret: str | None) -> SigningKey:
    """The signing key, for a process without a running app (the CLI, tools):
    migrates the database if needed, creates the key on first use."""
    async with migrated(database_url, secret) as engine:
        return await KeyStore(engine, secret).active_key()


def _not_retired() -> Any:
    return or_(signing_keys.c.retires_at.is_(None), signing_keys.c.retires_at > datetime.now(UTC))

"""Server-side console sessions, in the gateway's database (shared by replicas).

The browser holds one random value (256 bits) in a cookie; the database holds
its SHA-256, so a leaked table row cannot be replayed as a cookie. A session
keeps who logged in -- subject, issuer, scopes, client, expiry -- and the
synchronizer CSRF token its forms carry (OWASP CSRF Prevention Cheat Sheet,
"Synchronizer Token Pattern"), never the user's upstream token: what the
session may see is decided from that identity by the API's own functions.

A login under way is not kept here but in the browser, sealed
(`gateway.console.login_state`): an anonymous visit writes nothing.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, insert, select
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.storage.tables import console_sessions
from policies.tokens import DEV_CLIENT_ID, Principal

_PURGE_EVERY_SECONDS = 60.0


def new_secret() -> str:
    """256 random bits, URL-safe: a cookie value, CSRF token, state or verifier."""
    return secrets.token_urlsafe(32)


def _key(cookie: str) -> str:
    return hashlib.sha256(cookie.encode()).hexdigest()


@dataclass(frozen=True)
class ConsoleUser:
    """Who a session is, and what its forms must carry."""

    subject: str
    issuer: str
    scopes: frozenset[str]
    client_id: str | None
    csrf: str
    expires_at: datetime

    def principal(self) -> Principal:
        """The caller the API's decision functions judge, as a bearer token's would be."""
        return Principal(
            subject=self.subject,
            issuer=self.issuer,
            scopes=self.scopes,
            client_id=self.client_id,
            expires_at=int(self.expires_at.timestamp()),
        )


class SessionStore:
    def __init__(
        self,
        engine: AsyncEngine,
        clock: Callable[[], float] = time.time,
        *,
        accept_dev: bool = False,
    ) -> None:
        self._engine = engine
        self._clock = clock
        self._purged_at = 0.0
        # A dev login's session (the dev client id) counts only on a `--dev`
        # gateway, as the dev issuer's tokens do: not after a restart without
        # it, nor on a replica without it.
        self._accept_dev = accept_dev

    def _now(self) -> datetime:
        return datetime.fromtimestamp(self._clock(), UTC)

    async def create(self, principal: Principal, seconds: int) -> tuple[str, ConsoleUser]:
        """A new session for ``principal`` (a fresh cookie value: a login never
        reuses an id the browser had before, against session fixation), lasting
        ``seconds`` and never past the token it was made from, if any."""
        await self._purge()
        now = self._now()
        expires = now + timedelta(seconds=seconds)
        if principal.expires_at:
            expires = min(expires, datetime.fromtimestamp(principal.expires_at, UTC))
        cookie = new_secret()
        user = ConsoleUser(
            subject=principal.subject,
            issuer=principal.issuer,
            scopes=principal.scopes,
            client_id=principal.client_id,
            csrf=new_secret(),
            expires_at=expires,
        )
        async with self._engine.begin() as conn:
            await conn.execute(
                insert(console_sessions).values(
                    id=_key(cookie),
                    subject=user.subject,
                    issuer=user.issuer,
                    scopes=" ".join(sorted(user.scopes)),
                    client_id=user.client_id,
                    csrf=user.csrf,
                    created_at=now,
                    expires_at=expires,
                )
            )
        return cookie, user

    async def get(self, cookie: str | None) -> ConsoleUser | None:
        if not cookie:
            return None
        async with self._engine.connect() as conn:
            row = (
                await conn.execute(
                    select(console_sessions).where(console_sessions.c.id == _key(cookie))
                )
            ).first()
        if row is None or (row.client_id == DEV_CLIENT_ID and not self._accept_dev):
            return None
        expires = _aware(row.expires_at)
        if expires <= self._now():
            await self.delete(cookie)
            return None
        return ConsoleUser(
            subject=row.subject,
            issuer=row.issuer,
            scopes=frozenset(row.scopes.split()),
            client_id=row.client_id,
            csrf=row.csrf,
            expires_at=expires,
        )

    async def delete(self, cookie: str) -> None:
        async with self._engine.begin() as conn:
            await conn.execute(
                delete(console_sessions).where(console_sessions.c.id == _key(cookie))
            )

    async def _purge(self) -> None:
        """Drop expired sessions, at most once a minute per process."""
        if self._clock() - self._purged_at < _PURGE_EVERY_SECONDS:
            return
        self._purged_at = self._clock()
        now = self._now()
        async with self._engine.begin() as conn:
            await conn.execute(delete(console_sessions).where(console_sessions.c.expires_at <= now))


def _aware(value: datetime) -> datetime:
    # SQLite hands back naive datetimes (stored as UTC).
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)

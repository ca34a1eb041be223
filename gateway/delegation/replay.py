"""Remembering one-time values (client assertion `jti`s) until they expire.

RFC 7523 §3 item 7: the authorization server may reject a JWT whose `jti` it
has seen before; Switchboard always does. The ids are kept in the database
(`used_assertions`), not in Redis: a Redis restart without persistence, a
failover to a replica that had not yet received the key, or a flush would
forget an unexpired id and let its assertion be used again (RDB snapshots
lose the last seconds' writes even with persistence on, and managed Redis
often hides `CONFIG` so the gateway could not even tell). The database is
already needed by every token exchange (the client's credential lives there),
so this adds one INSERT and no new way to fail. An INSERT on the primary key
is atomic across replicas: exactly one wins.

Only a SHA-256 of "client id:jti" is stored. Expired ids are purged at most
once a minute per process, by whichever exchange comes along.
"""

from __future__ import annotations

import hashlib
import time
from datetime import UTC, datetime

from sqlalchemy import delete, insert, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.storage.tables import used_assertions

PURGE_SECONDS = 60.0


class ReplayCache:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._purged = 0.0

    async def first_use(self, key: str, expires_at: float) -> bool:
        """True the first time ``key`` is seen before it expires, False after.
        Raises (fails closed) when the database cannot be reached."""
        now = time.time()
        digest = hashlib.sha256(key.encode()).hexdigest()
        # Keep it at least a second so a just-expired assertion cannot slip through twice.
        until = datetime.fromtimestamp(max(int(expires_at) + 1, int(now) + 1), UTC)
        table = used_assertions.c
        try:
            async with self._engine.begin() as conn:
                await conn.execute(insert(used_assertions).values(key=digest, expires_at=until))
            first = True
        except IntegrityError:
            # Seen before; it counts as new only if that use has expired.
            async with self._engine.begin() as conn:
                renewed = await conn.execute(
                    update(used_assertions)
                    .where(table.key == digest, table.expires_at < datetime.fromtimestamp(now, UTC))
                    .values(expires_at=until)
                )
            first = bool(renewed.rowcount)
        if now - self._purged >= PURGE_SECONDS:
            self._purged = now
            async with self._engine.begin() as conn:
                await conn.execute(
                    delete(used_assertions).where(
                        table.expires_at < datetime.fromtimestamp(now, UTC)
                    )
                )
        return first

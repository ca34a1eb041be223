"""The token vault: each user's tokens at each upstream, sealed at rest.

A row per (upstream, user issuer, user subject) -- "alice" at two identity
providers is two users. The access and refresh tokens and the client's
registration (with its secret) are sealed with the gateway's secret under a
purpose of their own (`policies.keys.seal_secret`), so a copy of the table
opens nothing, and nothing sealed for another use opens as a token. The
`Connection` a caller gets never prints its tokens.

Refreshing across replicas: a replica first claims the row
(`refreshing_until`, only over the version it read), refreshes, and writes
the new tokens over that version; a replica that finds the row claimed waits
for the version to change. So one refresh is in flight per connection, and a
rotated refresh token (RFC 9700 §4.14.2) is never sent twice -- which an
authorization server may read as theft and answer by revoking them all.
"""

from __future__ import annotations

import json
import logging
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import fields
from datetime import UTC, datetime, timedelta
from typing import Any

from mcp.shared.auth import OAuthClientInformationFull
from sqlalchemy import and_, delete, insert, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.connections.connection import Connection, ConnectionInfo, TokenGrant
from gateway.connections.errors import ConnectFailed
from gateway.storage.tables import upstream_clients, upstream_connections
from policies.keys import open_secret, seal_secret
from registry.tables import as_utc

SEAL_PURPOSE = "upstream-connection"
logger = logging.getLogger(__name__)
_CLAIM_SECONDS = 30  # a refresh that takes longer is someone else's to retry


_SHOWN = tuple(f.name for f in fields(ConnectionInfo))
LISTED_MAX = 1000
_OPENED_MAX = 10_000


def _when(value: datetime | None) -> datetime | None:
    return as_utc(value) if value is not None else None


def _info(row: Any) -> dict[str, Any]:
    """A row's listed fields (`ConnectionInfo`'s), times in UTC."""
    return {
        "id": row.id,
        "subject": row.subject,
        "issuer": row.issuer,
        "upstream": row.upstream,
        "scope": row.scope,
        "expires_at": _when(row.expires_at),
        "authorization_server": row.authorization_server,
        "created_at": as_utc(row.created_at),
        "refreshed_at": as_utc(row.refreshed_at),
        "used_at": _when(row.used_at),
    }


class Vault:
    def __init__(
        self, engine: AsyncEngine, secret: str | None, clock: Callable[[], float] = time.time
    ) -> None:
        self._engine = engine
        self._secret = secret
        self._clock = clock
        # Opened rows by (id, version): a refresh or a reconnection is a new
        # version, so an entry is never stale; bounded, least recently used out.
        self._opened: OrderedDict[
            tuple[str, int], tuple[str, str | None, OAuthClientInformationFull]
        ] = OrderedDict()

    def now(self) -> datetime:
        return datetime.fromtimestamp(self._clock(), UTC)

    def _seal(self, value: dict[str, Any]) -> str:
        return seal_secret(json.dumps(value, separators=(",", ":")), self._secret, SEAL_PURPOSE)

    def _open(self, stored: str) -> dict[str, Any]:
        opened: dict[str, Any] = json.loads(open_secret(stored, self._secret, SEAL_PURPOSE))
        return opened

    def _opened_of(self, row: Any) -> tuple[str, str | None, OAuthClientInformationFull]:
        """The sealed part of a row, opened -- once per (connection, version):
        opening and parsing it on every call cost more than the call's own read."""
        key = (row.id, row.version)
        opened = self._opened.get(key)
        if opened is None:
            tokens = self._open(row.tokens)
            opened = (
                str(tokens["access_token"]),
                tokens.get("refresh_token"),
                OAuthClientInformationFull.model_validate(self._open(row.client)),
            )
            self._opened[key] = opened
            while len(self._opened) > _OPENED_MAX:
                self._opened.popitem(last=False)
        else:
            self._opened.move_to_end(key)
        return opened

    def _from_row(self, row: Any) -> Connection:
        access, refresh, client = self._opened_of(row)
        return Connection(
            **_info(row),
            token_endpoint=row.token_endpoint,
            revocation_endpoint=row.revocation_endpoint,
            resource=row.resource,
            version=row.version,
            refreshing_until=_when(row.refreshing_until),
            access_token=access,
            refresh_token=refresh,
            client=client,
        )

    def _values(self, grant: TokenGrant, now: datetime) -> dict[str, Any]:
        token = grant.token
        return {
            "tokens": self._seal(
                {"access_token": token.access_token, "refresh_token": token.refresh_token}
            ),
            "scope": token.scope,
            "expires_at": (
                now + timedelta(seconds=token.expires_in) if token.expires_in is not None else None
            ),
            "authorization_server": grant.authorization_server,
            "token_endpoint": grant.token_endpoint,
            "revocation_endpoint": grant.revocation_endpoint,
            "resource": grant.resource,
            "client": self._seal(grant.client.model_dump(mode="json", exclude_none=True)),
            "refreshing_until": None,
            "refreshed_at": now,
        }

    async def save(
        self, subject: str, issuer: str, upstream: str, grant: TokenGrant
    ) -> tuple[Connection, Connection | None]:
        """Keep a new connection; (it, the one it replaced -- to be revoked)."""
        now = self.now()
        values = self._values(grant, now)
        for _ in range(2):  # a concurrent first connection of the same user: update it
            replaced = await self.get(subject, issuer, upstream)
            try:
                async with self._engine.begin() as conn:
                    if replaced is None:
                        await conn.execute(
                            insert(upstream_connections).values(
                                id=secrets.token_urlsafe(12),
                                subject=subject,
                                issuer=issuer,
                                upstream=upstream,
                                version=1,
                                created_at=now,
                                **values,
                            )
                        )
                    else:
                        await conn.execute(
                            update(upstream_connections)
                            .where(upstream_connections.c.id == replaced.id)
                            .values(version=upstream_connections.c.version + 1, **values)
                        )
            except IntegrityError:
                continue
            saved = await self.get(subject, issuer, upstream)
            assert saved is not None
            return saved, replaced
        # The server was removed meanwhile (its connections go with it).
        raise ConnectFailed("the connection could not be saved: its server is gone")

    async def get(self, subject: str, issuer: str, upstream: str) -> Connection | None:
        table = upstream_connections
        async with self._engine.connect() as conn:
            row = (
                await conn.execute(
                    select(table).where(
                        table.c.upstream == upstream,
                        table.c.issuer == issuer,
                        table.c.subject == subject,
                    )
                )
            ).first()
        return self._from_row(row) if row is not None else None

    async def by_id(self, connection_id: str) -> Connection | None:
        async with self._engine.connect() as conn:
            row = (
                await conn.execute(
                    select(upstream_connections).where(upstream_connections.c.id == connection_id)
                )
            ).first()
        return self._from_row(row) if row is not None else None

    async def listed(
        self, *, subject: str | None = None, issuer: str | None = None, upstream: str | None = None
    ) -> list[ConnectionInfo]:
        """At most `LISTED_MAX`, by upstream then user; nothing sealed is opened."""
        table = upstream_connections
        query = (
            select(*(table.c[name] for name in _SHOWN))
            .order_by(table.c.upstream, table.c.subject)
            .limit(LISTED_MAX)
        )
        if subject is not None and issuer is not None:
            query = query.where(table.c.subject == subject, table.c.issuer == issuer)
        if upstream is not None:
            query = query.where(table.c.upstream == upstream)
        async with self._engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        return [ConnectionInfo(**_info(row)) for row in rows]

    async def of_upstream(self, upstream: str) -> list[Connection]:
        """Every connection to ``upstream``, opened (to revoke them)."""
        table = upstream_connections
        async with self._engine.connect() as conn:
            rows = (await conn.execute(select(table).where(table.c.upstream == upstream))).all()
        opened = []
        for row in rows:
            try:
                opened.append(self._from_row(row))
            except Exception:  # sealed with another secret: forgotten all the same
                logger.warning("connection %s cannot be opened to revoke it", row.id)
        return opened

    async def forget_upstream(self, upstream: str) -> None:
        """The upstream is gone: its connections and its registered client
        with it (revoke them first: `of_upstream`)."""
        async with self._engine.begin() as conn:
            await conn.execute(
                delete(upstream_connections).where(upstream_connections.c.upstream == upstream)
            )
            await conn.execute(
                delete(upstream_clients).where(upstream_clients.c.upstream == upstream)
            )
        self._opened.clear()

    async def used(self, connection: Connection) -> None:
        """Note a use, at most once a minute (a call does not write a row each
        time). Best effort: a statistic never fails the call it describes."""
        now = self.now()
        if connection.used_at is not None and now - connection.used_at < timedelta(minutes=1):
            return
        try:
            async with self._engine.begin() as conn:
                await conn.execute(
                    update(upstream_connections)
                    .where(upstream_connections.c.id == connection.id)
                    .values(used_at=now)
                )
        except Exception:
            logger.warning("connection %s: its last use could not be noted", connection.id)

    async def claim_refresh(self, connection: Connection) -> bool:
        """Take the right to refresh ``connection`` (as read); False: another has it,
        or the tokens changed since they were read."""
        now = self.now()
        table = upstream_connections
        async with self._engine.begin() as conn:
            claimed = await conn.execute(
                update(table)
                .where(
                    table.c.id == connection.id,
                    table.c.version == connection.version,
                    or_(table.c.refreshing_until.is_(None), table.c.refreshing_until < now),
                )
                .values(refreshing_until=now + timedelta(seconds=_CLAIM_SECONDS))
            )
        return claimed.rowcount == 1

    async def refreshed(self, connection: Connection, grant: TokenGrant) -> Connection | None:
        """Write refreshed tokens over the version that was claimed."""
        token = grant.token
        if token.refresh_token is None:  # RFC 6749 §6: not rotated, the old one stays
            token = token.model_copy(update={"refresh_token": connection.refresh_token})
        if token.scope is None:
            token = token.model_copy(update={"scope": connection.scope})
        values = self._values(
            TokenGrant(
                token,
                grant.authorization_server,
                grant.token_endpoint,
                grant.revocation_endpoint,
                grant.resource,
                grant.client,
            ),
            self.now(),
        )
        table = upstream_connections
        async with self._engine.begin() as conn:
            written = await conn.execute(
                update(table)
                .where(and_(table.c.id == connection.id, table.c.version == connection.version))
                .values(version=table.c.version + 1, **values)
            )
        if written.rowcount != 1:
            return None
        return await self.by_id(connection.id)

    async def release(self, connection: Connection) -> None:
        """Give a claim back without new tokens (the refresh failed)."""
        table = upstream_connections
        async with self._engine.begin() as conn:
            await conn.execute(
                update(table)
                .where(table.c.id == connection.id, table.c.version == connection.version)
                .values(refreshing_until=None)
            )

    async def delete(self, connection_id: str, *, version: int | None = None) -> Connection | None:
        """Remove a connection (only at ``version``, if given: not one made again
        since it was read); what was removed."""
        found = await self.by_id(connection_id)
        if found is None or (version is not None and found.version != version):
            return None
        table = upstream_connections
        async with self._engine.begin() as conn:
            gone = await conn.execute(
                delete(table).where(table.c.id == connection_id, table.c.version == found.version)
            )
        return found if gone.rowcount == 1 else None

    # --- The client the gateway registered at an upstream's authorization server.

    async def registered_client(
        self, upstream: str, authorization_server: str
    ) -> OAuthClientInformationFull | None:
        async with self._engine.connect() as conn:
            row = (
                await conn.execute(
                    select(upstream_clients).where(upstream_clients.c.upstream == upstream)
                )
            ).first()
        if row is None or row.authorization_server != authorization_server:
            return None  # never presented to another server (it may have moved)
        return OAuthClientInformationFull.model_validate(self._open(row.client))

    async def keep_client(
        self, upstream: str, authorization_server: str, client: OAuthClientInformationFull
    ) -> OAuthClientInformationFull:
        """Keep a registration; the one kept (another made at the same moment
        may have been first: that one stays, for every user)."""
        sealed = self._seal(client.model_dump(mode="json", exclude_none=True))
        try:
            async with self._engine.begin() as conn:
                # One made at another authorization server is of no use any more.
                await conn.execute(
                    delete(upstream_clients).where(
                        upstream_clients.c.upstream == upstream,
                        upstream_clients.c.authorization_server != authorization_server,
                    )
                )
                await conn.execute(
                    insert(upstream_clients).values(
                        upstream=upstream,
                        authorization_server=authorization_server,
                        client=sealed,
                        created_at=self.now(),
                    )
                )
        except IntegrityError:
            kept = await self.registered_client(upstream, authorization_server)
            if kept is None:
                raise
            return kept
        return client

"""Storage of federated MCP servers and their pinned tools (SQLite and PostgreSQL).

Every write is one transaction: a registration stores the server and the
tools it listed together, a refresh applies the whole listing or nothing, and
an approval only lands if the definition is still the one reviewed.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Select, delete, insert, select, update
from sqlalchemy.engine import RowMapping
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from registry.mcp_models import (
    McpServerRecord,
    McpToolRecord,
)
from registry.mcp_names import NameConflict, reserved_id, withheld
from registry.mcp_rows import (
    McpServerConfig,
    StoredTool,
    config_of,
    server_record,
    stored_tool,
    tool_record,
)
from registry.mcp_sync import SyncResult, sync
from registry.mcp_versions import ServerVersion, versions_query
from registry.models import HealthStatus
from registry.name_holders import lock_names, skill_holders
from registry.store import is_agent_id
from registry.tables import agents, mcp_servers, mcp_tools

_SYNC_ATTEMPTS = 3


class McpServerConflict(Exception):
    """A server (or an agent: they share one id space) already has this id."""


class McpServerNotFound(Exception):
    pass


class McpToolNotFound(Exception):
    pass


class ToolDigestMismatch(Exception):
    """The tool's definition is no longer the one the admin reviewed."""


@dataclass(frozen=True)
class NewMcpServer:
    id: str
    name: str
    transport: str
    url: str | None
    command: Mapping[str, Any] | None
    resource: str
    timeout_seconds: float | None
    credential: Mapping[str, Any]
    credential_secret: str | None  # sealed
    registered_by: str
    trusted_registrant: bool
    prefix_tools: bool = True


class SqlMcpStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    # Servers ------------------------------------------------------------------

    async def id_taken(self, server_id: str) -> bool:
        if reserved_id(server_id) is not None:
            return True
        async with self._engine.connect() as conn:
            return await _id_taken(conn, server_id)

    async def create(
        self, server: NewMcpServer, tools: Sequence[Mapping[str, Any]], *, auto_approve: bool
    ) -> None:
        """Store a new server and its first listing. Nothing is read back: a
        1,000-tool server's record is a thousand tools' (`get`, when wanted)."""
        now = _now()
        for attempt in range(_SYNC_ATTEMPTS):
            try:
                async with self._engine.begin() as conn:
                    if (refusal := reserved_id(server.id)) is not None:
                        raise refusal.error(f"MCP server {server.id}")
                    await lock_names(conn)
                    if await _id_taken(conn, server.id):
                        raise McpServerConflict(server.id)
                    if await _resource_taken(conn, server.resource):
                        # A resource is a token audience: two targets sharing
                        # one could replay each other's minted tokens.
                        raise McpServerConflict(
                            f"{server.id}: resource {server.resource} names another target"
                        )
                    await conn.execute(
                        insert(mcp_servers).values(
                            id=server.id,
                            name=server.name,
                            transport=server.transport,
                            url=server.url,
                            command=dict(server.command) if server.command else None,
                            resource=server.resource,
                            timeout_seconds=server.timeout_seconds,
                            credential=dict(server.credential),
                            credential_secret=server.credential_secret,
                            registered_by=server.registered_by,
                            trusted_registrant=server.trusted_registrant,
                            prefix_tools=server.prefix_tools,
                            health_status=HealthStatus.UNKNOWN.value,
                            registered_at=now,
                            updated_at=now,
                        )
                    )
                    await sync(
                        conn, server.id, tools, auto_approve=auto_approve, now=now, registering=True
                    )
                break
            except IntegrityError:
                # Another registration took the id, or (rarely) a namespaced
                # name, between our read and our write: look again.
                if attempt == _SYNC_ATTEMPTS - 1:
                    raise McpServerConflict(server.id) from None

    async def delete(self, server_id: str) -> bool:
        if not is_agent_id(server_id):
            return False
        async with self._engine.begin() as conn:
            # Children first: SQLite enforces ON DELETE CASCADE only with a PRAGMA.
            await conn.execute(delete(mcp_tools).where(mcp_tools.c.server_id == server_id))
            result = await conn.execute(delete(mcp_servers).where(mcp_servers.c.id == server_id))
        return bool(result.rowcount)

    async def get(self, server_id: str) -> McpServerRecord | None:
        if not is_agent_id(server_id):
            return None
        records = await self._records(mcp_servers.c.id == server_id)
        return records[0] if records else None

    async def all(self) -> list[McpServerRecord]:
        return await self._records(None)

    async def _records(self, where: Any) -> list[McpServerRecord]:
        servers = select(mcp_servers).order_by(mcp_servers.c.id)
        tools = select(mcp_tools).order_by(mcp_tools.c.server_id, mcp_tools.c.namespaced)
        if where is not None:
            servers = servers.where(where)
            tools = tools.where(mcp_tools.c.server_id.in_(select(mcp_servers.c.id).where(where)))
        async with self._engine.connect() as conn:
            server_rows = list((await conn.execute(servers)).mappings())
            tool_rows = list((await conn.execute(tools)).mappings())
        by_server: dict[str, list[McpToolRecord]] = {}
        for row in tool_rows:
            by_server.setdefault(row["server_id"], []).append(tool_record(row))
        return [server_record(row, by_server.get(row["id"], [])) for row in server_rows]

    async def configs(self, server_ids: Sequence[str] | None = None) -> list[McpServerConfig]:
        query = select(mcp_servers).order_by(mcp_servers.c.registered_at, mcp_servers.c.id)
        if server_ids is not None:
            query = query.where(mcp_servers.c.id.in_(server_ids))
        async with self._engine.connect() as conn:
            return [config_of(row) for row in (await conn.execute(query)).mappings()]

    async def versions(self) -> dict[str, ServerVersion]:
        """Every server's version (`ServerVersion`): one grouped read."""
        async with self._engine.connect() as conn:
            rows = (await conn.execute(versions_query())).all()
        return {row[0]: ServerVersion(tuple(map(str, row[1:])), int(row[2] or 0)) for row in rows}

    async def config(self, server_id: str) -> McpServerConfig | None:
        if not is_agent_id(server_id):
            return None
        async with self._engine.connect() as conn:
            row = (
                (await conn.execute(select(mcp_servers).where(mcp_servers.c.id == server_id)))
                .mappings()
                .first()
            )
        return config_of(row) if row else None

    async def record_health(
        self,
        server_id: str,
        status: HealthStatus,
        detail: str | None,
        *,
        server_info: Mapping[str, Any] | None = None,
        protocol_version: str | None = None,
    ) -> None:
        values: dict[str, Any] = {
            "health_status": status.value,
            "health_detail": detail[:2000] if detail else None,
            "health_checked_at": _now(),
        }
        if server_info is not None:
            values["server_info"] = dict(server_info)
        if protocol_version is not None:
            values["protocol_version"] = protocol_version
        async with self._engine.begin() as conn:
            await conn.execute(
                update(mcp_servers).where(mcp_servers.c.id == server_id).values(**values)
            )

    # Tools --------------------------------------------------------------------

    async def sync_tools(
        self,
        server_id: str,
        tools: Sequence[Mapping[str, Any]],
        *,
        auto_approve: bool,
        auto_approve_if_first: bool = False,
    ) -> SyncResult:
        """Apply one complete listing: new tools, changed ones, vanished ones.
        ``auto_approve_if_first``: approve them if the server never had a tool
        (its first listing, made after its registration)."""
        for attempt in range(_SYNC_ATTEMPTS):
            try:
                async with self._engine.begin() as conn:
                    exists = await conn.scalar(
                        select(mcp_servers.c.id).where(mcp_servers.c.id == server_id)
                    )
                    if exists is None:
                        raise McpServerNotFound(server_id)
                    if auto_approve_if_first and not auto_approve:
                        listed_before = await conn.scalar(
                            select(mcp_tools.c.name)
                            .where(mcp_tools.c.server_id == server_id)
                            .limit(1)
                        )
                        auto_approve = listed_before is None
                    return await sync(conn, server_id, tools, auto_approve=auto_approve)
            except IntegrityError:
                # Two replicas synced at once (or a namespaced name was taken
                # meanwhile): the loser reads the winner's rows and tries again.
                if attempt == _SYNC_ATTEMPTS - 1:
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    async def listed_again(self, server_id: str, listing: str) -> bool:
        """The server listed the tools of ``listing`` (`SyncResult.listing`)
        again -- a probe's usual answer: when it was listed is written if
        that is still the listing its rows hold (another replica applying
        the same one included), and True; False, nothing written, if another
        was applied since (an admin's refresh, another replica): apply it."""
        async with self._engine.begin() as conn:
            result = await conn.execute(
                update(mcp_servers)
                .where(mcp_servers.c.id == server_id, mcp_servers.c.tools_listing == listing)
                .values(tools_refreshed_at=_now())
            )
        return result.rowcount == 1

    async def approve(
        self, server_id: str, namespaced: str, digest: str | None, approved_by: str
    ) -> McpToolRecord:
        async with self._engine.begin() as conn:
            row = (
                (
                    await conn.execute(
                        select(mcp_tools).where(
                            mcp_tools.c.server_id == server_id,
                            mcp_tools.c.namespaced == namespaced,
                        )
                    )
                )
                .mappings()
                .first()
            )
            if row is None:
                raise McpToolNotFound(f"{server_id}: {namespaced}")
            await _refuse_name(conn, server_id, row)
            if digest is not None and digest != row["digest"]:
                raise ToolDigestMismatch(
                    f"{namespaced} is now {row['digest']}, not the reviewed {digest}"
                )
            # The WHERE on the digest: a refresh that changed the definition
            # after we read it makes this update nothing, not a blind approval.
            result = await conn.execute(
                update(mcp_tools)
                .where(
                    mcp_tools.c.server_id == server_id,
                    mcp_tools.c.namespaced == namespaced,
                    mcp_tools.c.digest == row["digest"],
                )
                .values(
                    approved_digest=row["digest"],
                    approved_definition=row["definition"],
                    approved_by=approved_by,
                    approved_at=_now(),
                )
            )
            if result.rowcount != 1:
                raise ToolDigestMismatch(f"{namespaced} changed while it was being approved")
            fresh = (
                (
                    await conn.execute(
                        select(mcp_tools).where(
                            mcp_tools.c.server_id == server_id,
                            mcp_tools.c.namespaced == namespaced,
                        )
                    )
                )
                .mappings()
                .one()
            )
        return tool_record(fresh)

    async def tools(self, server_ids: Sequence[str] | None = None) -> list[StoredTool]:
        """Every tool of every server (or of ``server_ids``), available or not."""
        async with self._engine.connect() as conn:
            rows = (await conn.execute(_tools_query(server_ids))).mappings()
            return [stored_tool(row) for row in rows]

    async def tool_batches(
        self, server_ids: Sequence[str], size: int
    ) -> AsyncIterator[list[StoredTool]]:
        """`tools` of ``server_ids``, ``size`` at a time: each batch's JSON is
        decoded on the event loop, which runs other work between them."""
        async with self._engine.connect() as conn:
            result = await conn.stream(_tools_query(server_ids))
            async for rows in result.mappings().partitions(size):
                yield [stored_tool(row) for row in rows]


# Helpers --------------------------------------------------------------------------


def _tools_query(server_ids: Sequence[str] | None) -> Select[Any]:
    # Not the approved definition: JSON decoded on the event loop, never used here.
    wanted = ("server_id", "name", "namespaced", "definition", "digest", "approved_digest")
    query = select(*(mcp_tools.c[name] for name in (*wanted, "flags", "available")))
    if server_ids is not None:
        query = query.where(mcp_tools.c.server_id.in_(server_ids))
    return query.order_by(mcp_tools.c.namespaced)


async def _refuse_name(conn: AsyncConnection, server_id: str, row: RowMapping) -> None:
    """An approval makes a tool callable under its name: refused (`NameConflict`)
    while that name is not the tool's to hold, or is an agent's skill's."""
    namespaced = row["namespaced"]
    refusal = withheld(server_id, row["name"], namespaced)
    if refusal is not None:
        raise refusal.error(f"{namespaced} cannot be approved")
    holder = (await skill_holders(conn, [namespaced])).get(namespaced)
    if holder is not None:
        raise NameConflict(f"{namespaced} cannot be approved: the name is {holder}")


async def _resource_taken(conn: AsyncConnection, resource: str) -> bool:
    for table in (mcp_servers, agents):
        if await conn.scalar(select(table.c.id).where(table.c.resource == resource)) is not None:
            return True
    return False


async def _id_taken(conn: AsyncConnection, server_id: str) -> bool:
    for table in (mcp_servers, agents):
        if await conn.scalar(select(table.c.id).where(table.c.id == server_id)) is not None:
            return True
    return False


def _now() -> datetime:
    return datetime.now(UTC)

"""Each federated MCP server's version: what the in-memory catalog
(`gateway.federation.catalog`) compares to find the servers whose rows moved."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Integer, Select, case, cast, func, select

from registry.tables import mcp_servers, mcp_tools


@dataclass(frozen=True)
class ServerVersion:
    """What moves when a server's row or any of its tools' rows is written
    (`registry.mcp_sync`): its edit, its tools' count, latest change,
    latest approval, how many are available and how many approved as they
    are. Not its latest listing: one that changed nothing moves nothing."""

    marks: tuple[object, ...]
    tools: int


def versions_query() -> Select[Any]:
    """One row per server: its id, then what `ServerVersion.marks` holds."""
    t, s = mcp_tools.c, mcp_servers.c
    per_server = (
        select(
            t.server_id,
            func.count().label("n"),
            func.max(t.changed_at),
            func.max(t.approved_at),
            func.sum(cast(t.available, Integer)),
            func.sum(case((t.approved_digest == t.digest, 1), else_=0)),
        )
        .group_by(t.server_id)
        .subquery()
    )
    query = select(s.id, s.updated_at, *list(per_server.c)[1:])
    return query.outerjoin_from(mcp_servers, per_server, per_server.c.server_id == s.id)

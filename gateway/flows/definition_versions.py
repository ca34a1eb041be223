"""A flow's definition stored as its next version: the current document in
`flows`, every version kept in `flow_versions` (`gateway.flows.store`)."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.storage.flow_tables import flow_versions, flows


def digest_of(document: dict[str, Any]) -> str:
    canonical = json.dumps(document, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


async def save_version(
    conn: AsyncConnection, document: dict[str, Any], by: str
) -> tuple[int, bool]:
    """Store ``document`` as the flow's next version unless it is unchanged,
    in ``conn``'s transaction. Returns (version, changed)."""
    flow_id = str(document["id"])
    digest = digest_of(document)
    now = datetime.now(UTC)
    current = (
        await conn.execute(select(flows.c.version, flows.c.digest).where(flows.c.id == flow_id))
    ).first()
    if current is not None and current.digest == digest:
        return current.version, False
    if current is None:
        # A flow removed and registered again goes on from its last version.
        last = await conn.scalar(
            select(func.max(flow_versions.c.version)).where(flow_versions.c.flow_id == flow_id)
        )
        version = (last or 0) + 1
    else:
        version = current.version + 1
    values = {
        "version": version,
        "name": str(document["name"]),
        "document": document,
        "digest": digest,
        "updated_at": now,
    }
    if current is None:
        await conn.execute(
            insert(flows).values(id=flow_id, created_by=by, created_at=now, **values)
        )
    else:
        await conn.execute(update(flows).where(flows.c.id == flow_id).values(**values))
    await conn.execute(
        insert(flow_versions).values(
            flow_id=flow_id,
            version=version,
            document=document,
            digest=digest,
            created_by=by,
            created_at=now,
        )
    )
    return version, True

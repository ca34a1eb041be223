"""A flow's definition stored as its next version: the current document in
`flows`, every version kept in `flow_versions` (`gateway.flows.store`)."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from gateway.flows.definition import FlowDocument
from gateway.storage.flow_tables import flow_versions, flows

# How many versions' documents a process keeps (then it starts again).
_VERSIONS_KEPT = 4096


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


class VersionDocuments:
    """Versions' documents, each read and parsed once per process: a stored
    version never changes, and a removed flow's are kept."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._documents: dict[tuple[str, int], dict[str, Any]] = {}
        self._parsed: dict[tuple[str, int], FlowDocument] = {}

    async def document(self, flow_id: str, version: int) -> dict[str, Any] | None:
        key = (flow_id, version)
        document = self._documents.get(key)
        if document is None:
            async with self._engine.connect() as conn:
                document = await conn.scalar(
                    select(flow_versions.c.document).where(
                        flow_versions.c.flow_id == flow_id, flow_versions.c.version == version
                    )
                )
            if document is None:
                return None
            _kept(self._documents)[key] = document
        return document

    def parsed(self, flow_id: str, version: int, document: dict[str, Any]) -> FlowDocument:
        """``document`` (that version's), parsed once."""
        key = (flow_id, version)
        found = self._parsed.get(key)
        if found is None:
            found = _kept(self._parsed)[key] = FlowDocument.model_validate(document)
        return found


def _kept(cache: dict[Any, Any]) -> dict[Any, Any]:
    if len(cache) >= _VERSIONS_KEPT:
        cache.clear()
    return cache

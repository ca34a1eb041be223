"""An agent's row, both ways: the columns a parsed card is stored in, and the
`AgentRecord` a row is shown as; and each card's version row
(`registry.store` reads and writes them)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import insert
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncConnection

from registry.cards import ParsedCard
from registry.models import (
    AgentRecord,
    HealthInfo,
    HealthStatus,
    InterfaceSummary,
    SignatureInfo,
    SkillSummary,
)
from registry.signatures import SignatureCheck
from registry.tables import agent_card_versions, agents, as_utc


def card_columns(parsed: ParsedCard, signature: SignatureCheck) -> dict[str, Any]:
    card = parsed.card
    return {
        "name": card.name,
        "description": card.description,
        "card_version": card.version,
        "protocol_version": parsed.protocol_version,
        "card": parsed.normalized,
        "original_card": parsed.original,
        "card_digest": parsed.digest,
        "signature_status": signature.status.value,
        "signature_detail": signature.detail,
    }


# What a record shows; the original card and pinned keys stay in the database.
RECORD_COLUMNS = [
    c for c in agents.c if c.name not in ("original_card", "pinned_keys", "health_lease_until")
]


def agent_record(row: RowMapping) -> AgentRecord:
    card: dict[str, Any] = row["card"]
    return AgentRecord(
        id=row["id"],
        resource=row["resource"],
        timeout_seconds=row["timeout_seconds"],
        skill_contracts=row["skill_contracts"] or {},
        name=row["name"],
        description=row["description"],
        version=row["card_version"],
        protocol_version=row["protocol_version"],
        revision=row["revision"],
        card_url=row["card_url"],
        card_digest=row["card_digest"],
        skills=[skill_summary(s) for s in card.get("skills", [])],
        interfaces=[
            InterfaceSummary(
                url=i.get("url", ""),
                protocol_binding=i.get("protocolBinding", ""),
                protocol_version=i.get("protocolVersion", ""),
            )
            for i in card.get("supportedInterfaces", [])
        ],
        health=HealthInfo(
            status=HealthStatus(row["health_status"]),
            consecutive_failures=row["health_failures"],
            checked_at=as_utc(row["health_checked_at"]) if row["health_checked_at"] else None,
            detail=row["health_detail"],
        ),
        signature=SignatureInfo(status=row["signature_status"], detail=row["signature_detail"]),
        registered_at=as_utc(row["registered_at"]),
        updated_at=as_utc(row["updated_at"]),
    )


def skill_summary(skill: Mapping[str, Any]) -> SkillSummary:
    return SkillSummary(
        id=skill.get("id", ""),
        name=skill.get("name", ""),
        description=skill.get("description", ""),
        tags=list(skill.get("tags", [])),
        input_modes=list(skill.get("inputModes", [])),
        output_modes=list(skill.get("outputModes", [])),
    )


async def insert_version(
    conn: AsyncConnection,
    agent_id: str,
    revision: int,
    parsed: ParsedCard,
    signature: SignatureCheck,
    now: datetime,
) -> None:
    await conn.execute(
        insert(agent_card_versions).values(
            agent_id=agent_id,
            revision=revision,
            card=parsed.normalized,
            original_card=parsed.original,
            card_digest=parsed.digest,
            card_version=parsed.card.version,
            signature_status=signature.status.value,
            created_at=now,
        )
    )

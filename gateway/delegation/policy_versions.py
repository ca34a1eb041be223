"""The policy as admins edit it through the API (`PUT /policies`), and how
every replica comes to enforce the newest version.

Where the policy comes from: a policy file, when one is set (the file is the
source of truth, edited where it lives -- GitOps deployments stay so);
otherwise the newest version stored here (table `policy_versions`), else the
built-in default. A save is checked exactly as a file is, then stored over
the version its author read (`base_digest`): a version saved meanwhile by
someone else refuses it (`StalePolicy`), so no save silently undoes another.
The replica that saved applies it at once; every other one finds it on its
next periodic reload (`PolicyReloader.reload`: one `SELECT max(id)`).

Why a row per version rather than one row updated: the newest id is the
whole comparison a replica makes each second, the versions are the history
an admin reads back (and a rollback is saving an older document again), and
two saves over one version meet at a unique key (`replaces`) on SQLite and
PostgreSQL alike, whatever the isolation level.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import func, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.storage.tables import policy_versions as table
from policies.policy_file import (
    DEFAULT_DOCUMENT,
    PolicyDocument,
    PolicyError,
    PolicySource,
    document_digest,
)
from policies.rules import Policy
from policies.tokens import Principal

logger = logging.getLogger(__name__)
DEFAULT_DIGEST = document_digest(DEFAULT_DOCUMENT)


class StalePolicy(Exception):
    """The policy changed since the editor read it: saved over, it would be lost."""

    def __init__(self, in_force: str) -> None:
        super().__init__(in_force)
        self.in_force = in_force


@dataclass(frozen=True)
class PolicyVersion:
    id: int
    digest: str
    author_subject: str
    author_issuer: str
    created_at: datetime
    document: str | None = None  # only when one version is read

    def __post_init__(self) -> None:
        if self.created_at.tzinfo is None:  # SQLite keeps no time zone: it was UTC
            object.__setattr__(self, "created_at", self.created_at.replace(tzinfo=UTC))


async def save(
    engine: AsyncEngine,
    source: PolicySource,
    text: str,
    policy: Policy,
    base_digest: str,
    author: Principal,
) -> PolicyDocument:
    """Store ``text`` (``policy``, already checked by ``source``) over the
    newest version if that is the one whose digest is ``base_digest``, and put
    it in force here; `StalePolicy` if another was saved meanwhile."""
    async with engine.connect() as conn:
        newest = (
            await conn.execute(
                select(table.c.id, table.c.digest).order_by(table.c.id.desc()).limit(1)
            )
        ).first()
    replaces, in_force = (newest.id, newest.digest) if newest else (0, DEFAULT_DIGEST)
    if base_digest != in_force:
        raise StalePolicy(in_force)
    # Not in the read's transaction: a save committed since then took
    # `replaces` first, and this insert meets it at the unique key (a read
    # transaction upgraded to a write would be SQLite's "database is locked").
    try:
        async with engine.begin() as conn:
            version = await conn.scalar(
                insert(table)
                .values(
                    replaces=replaces,
                    document=text,
                    digest=document_digest(text),
                    author_subject=author.subject,
                    author_issuer=author.issuer,
                    created_at=datetime.now(UTC),
                )
                .returning(table.c.id)
            )
    except IntegrityError:
        raise StalePolicy(await _newest_digest(engine)) from None
    assert version is not None
    document = PolicyDocument(text, "stored", version)
    source.adopt(policy, document)
    return document


async def _newest_digest(engine: AsyncEngine) -> str:
    async with engine.connect() as conn:
        digest = await conn.scalar(select(table.c.digest).order_by(table.c.id.desc()).limit(1))
    return digest or DEFAULT_DIGEST


async def newest_id(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:
        return int(await conn.scalar(select(func.max(table.c.id))) or 0)


async def version(engine: AsyncEngine, version_id: int) -> PolicyVersion | None:
    async with engine.connect() as conn:
        row = (await conn.execute(select(table).where(table.c.id == version_id))).first()
    if row is None:
        return None
    return PolicyVersion(
        row.id,
        row.digest,
        row.author_subject,
        row.author_issuer,
        row.created_at,
        row.document,
    )


async def versions(
    engine: AsyncEngine, limit: int, before: int | None = None
) -> list[PolicyVersion]:
    """Newest first, without their documents; ``before``: only older ids."""
    query = select(
        table.c.id,
        table.c.digest,
        table.c.author_subject,
        table.c.author_issuer,
        table.c.created_at,
    )
    if before is not None:
        query = query.where(table.c.id < before)
    async with engine.connect() as conn:
        rows = (await conn.execute(query.order_by(table.c.id.desc()).limit(limit))).all()
    return [
        PolicyVersion(r.id, r.digest, r.author_subject, r.author_issuer, r.created_at) for r in rows
    ]


class PolicyReloader:
    """Keeps ``source`` on the policy it should enforce: the file's, when one
    is set; otherwise the newest stored version."""

    def __init__(self, engine: AsyncEngine, source: PolicySource) -> None:
        self.engine = engine
        self.source = source
        self._refused = 0  # the newest version this replica could not enforce

    async def start(self) -> None:
        """At start-up: the newest stored version in force. One this
        deployment cannot enforce is fatal, as a bad policy file is -- the
        default in its place would open what the admins closed."""
        if self.source.path is None:
            await self._take(await newest_id(self.engine), fatal=True)

    async def reload(self) -> None:
        """One pass of the `policy-reloader` job."""
        if self.source.path is not None:
            self.source.reload_if_changed()
            return
        newest = await newest_id(self.engine)
        if newest > self.source.stored_version and newest != self._refused:
            await self._take(newest, fatal=False)

    async def _take(self, version_id: int, *, fatal: bool) -> None:
        found = await version(self.engine, version_id) if version_id else None
        if found is None or found.document is None:
            return
        try:
            policy = await asyncio.to_thread(
                self.source.check, found.document, f"policy version {found.id}"
            )
        except PolicyError as exc:
            if fatal:
                raise
            self._refused = found.id
            self.source.last_error = str(exc)
            logger.error(
                "policy version %d not applied, keeping the previous policy: %s", found.id, exc
            )
            return
        if self.source.adopt(policy, PolicyDocument(found.document, "stored", found.id)):
            logger.info("policy version %d in force (saved by %s)", found.id, found.author_subject)

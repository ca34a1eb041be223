"""`gateway.delegation.policy_versions` on both databases: a replica takes up
the newest stored version (at start-up, and on each reload), keeps its policy
when the newest is one its deployment cannot enforce (said once, not each
second), takes the next good one, and refuses to start on a bad newest one
rather than fall back to the open default; a save over a stale base is refused."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.delegation import policy_versions
from gateway.delegation.policy_versions import PolicyReloader, StalePolicy
from gateway.storage import db
from gateway.storage.tables import policy_versions as table
from policies.policy_file import PolicyError, PolicySource, document_digest
from policies.rules import Policy
from policies.tokens import Principal

SECRET = "a-sealing-secret-for-the-policy-version-test"
ADMIN = Principal(subject="ann", issuer="https://idp.example", scopes=frozenset())
CLOSED = "agents:\n  x:\n    allow: false\n"
LIMITED = "limits:\n  - {name: a, rate: 1/second}\n"


def no_limits(policy: Policy) -> str | None:
    return "no rate limits in this deployment" if policy.limits else None


async def _insert(engine: AsyncEngine, text: str, replaces: int) -> None:
    async with engine.begin() as conn:
        await conn.execute(
            table.insert().values(
                replaces=replaces,
                document=text,
                digest=document_digest(text),
                author_subject="bob",
                author_issuer="https://idp.example",
                created_at=datetime.now(UTC),
            )
        )


async def test_replicas_take_up_the_newest_version(
    tmp_path: Path, database_url: str | None, caplog: pytest.LogCaptureFixture
) -> None:
    url = database_url or f"sqlite+aiosqlite:///{tmp_path / 'db.sqlite'}"
    async with db.migrated(url, SECRET) as engine:
        saver = PolicySource(None, no_limits)
        saved = await policy_versions.save(
            engine, saver, CLOSED, saver.check(CLOSED), policy_versions.DEFAULT_DIGEST, ADMIN
        )
        assert saver.document == saved and saver.current.agents["x"].allow is False
        with pytest.raises(StalePolicy) as stale:
            await policy_versions.save(
                engine, saver, CLOSED, saver.check(CLOSED), policy_versions.DEFAULT_DIGEST, ADMIN
            )
        assert stale.value.in_force == saved.digest

        other = PolicySource(None, no_limits)
        reloader = PolicyReloader(engine, other)
        await reloader.start()
        assert other.stored_version == 1 and other.current == saver.current
        await reloader.reload()  # nothing newer: nothing read
        assert other.stored_version == 1

        await _insert(engine, LIMITED, replaces=1)  # saved by a differently deployed replica
        with caplog.at_level(logging.ERROR, "gateway.delegation.policy_versions"):
            await reloader.reload()
            await reloader.reload()
        # Its own records: a DBOS thread another test left may log meanwhile.
        said = [
            r.getMessage() for r in caplog.records if r.name == "gateway.delegation.policy_versions"
        ]
        assert len(said) == 1 and "version 2 not applied" in said[0]
        assert other.stored_version == 1 and "no rate limits" in (other.last_error or "")

        await _insert(engine, "agents: {}\n", replaces=2)
        await reloader.reload()
        assert other.stored_version == 3 and other.last_error is None

        await _insert(engine, LIMITED, replaces=3)
        with pytest.raises(PolicyError, match="no rate limits"):
            await PolicyReloader(engine, PolicySource(None, no_limits)).start()

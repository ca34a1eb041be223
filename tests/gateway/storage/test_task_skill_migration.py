"""Migration 0012_task_skill: `a2a_tasks.skill`, on SQLite and PostgreSQL.

A task recorded before it keeps NULL -- no skill in particular: a message
continuing it is decided as for the strictest skill
(`gateway.delegation.handoffs.message_skill`) -- and a task recorded after
keeps the skill of its first record, whatever later records say.
"""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from a2a.types import Task, TaskState
from alembic import command
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.delegation.tasks import Owner, TaskRecords
from gateway.storage import db

ALICE = Owner("alice", "https://issuer.example")
BOB = Owner("bob", "https://issuer.example")


async def migrate(engine: AsyncEngine, revision: str, *, down: bool = False) -> None:
    def run(connection: Connection) -> None:
        config = db.alembic_config()
        config.attributes["connection"] = connection
        (command.downgrade if down else command.upgrade)(config, revision)

    async with engine.begin() as conn:
        await conn.run_sync(run)


async def columns(engine: AsyncEngine) -> set[str]:
    def names(connection: Connection) -> set[str]:
        return {c["name"] for c in sa.inspect(connection).get_columns("a2a_tasks")}

    async with engine.connect() as conn:
        return await conn.run_sync(names)


def task(task_id: str, state: TaskState = TaskState.TASK_STATE_INPUT_REQUIRED) -> Task:
    found = Task(id=task_id, context_id="c1")
    found.status.state = state
    return found


async def test_tasks_recorded_before_keep_no_skill_and_new_ones_keep_their_first(
    unmigrated_engine: AsyncEngine,
) -> None:
    await migrate(unmigrated_engine, "0009")
    assert "skill" not in await columns(unmigrated_engine)
    now = datetime.now(UTC)
    async with unmigrated_engine.begin() as conn:
        await conn.execute(
            sa.text(
                "INSERT INTO a2a_tasks (agent_id, task_id, context_id, owner_subject, "
                "owner_issuer, state, created_at, updated_at, task) VALUES "
                "('ops', 'old', 'c1', :sub, :iss, 'TASK_STATE_INPUT_REQUIRED', :now, :now, '{}')"
            ),
            {"sub": ALICE.subject, "iss": ALICE.issuer, "now": now},
        )
    await migrate(unmigrated_engine, "head")
    assert "skill" in await columns(unmigrated_engine)
    tasks = TaskRecords(unmigrated_engine)
    assert await tasks.skill_of("ops", ALICE, "old") == (True, None)
    assert await tasks.skill_of("ops", BOB, "old") == (False, None)  # not Bob's
    assert await tasks.skill_of("ops", ALICE, "none") == (False, None)
    # Recorded now: the skill of the first record stays.
    assert await tasks.record("ops", ALICE, task("new"), "adminop")
    assert await tasks.record("ops", ALICE, task("new", TaskState.TASK_STATE_COMPLETED), "read")
    assert await tasks.record("ops", ALICE, task("new"))
    assert await tasks.skill_of("ops", ALICE, "new") == (True, "adminop")
    # Down again: the column goes, the rows stay.
    await migrate(unmigrated_engine, "0009", down=True)
    assert "skill" not in await columns(unmigrated_engine)
    async with unmigrated_engine.connect() as conn:
        kept = (await conn.execute(sa.text("SELECT task_id FROM a2a_tasks"))).scalars().all()
    assert sorted(kept) == ["new", "old"]

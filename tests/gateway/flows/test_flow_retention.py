"""The retention pass's second look (`RunRetention._forget_leftovers`): an
engine copy still there for a run already rewritten under `redact:` goes on a
later pass (a run of a flow without `redact` keeps its copy: a fork replays
from it). The engine stands in (what it holds is a set of run ids); the
runs' records are in a real database."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import anyio
from sqlalchemy import insert

from gateway.flows.retention import RunRetention
from gateway.storage.db import create_engine, upgrade
from gateway.storage.flow_tables import flow_runs, flow_versions


class Engine:
    """The durable engine as the pass sees it: which workflows it holds."""

    launched = True

    def __init__(self, stored: set[str]) -> None:
        self.stored = stored

    async def succeeded(self, run_ids: list[str]) -> list[str]:
        return [run_id for run_id in run_ids if run_id in self.stored]

    async def delete(self, run_ids: list[str]) -> None:
        self.stored -= set(run_ids)


def _run(run_id: str, redacted_at: datetime | None, version: int = 1) -> dict[str, Any]:
    now = datetime.now(UTC)
    return {
        "id": run_id,
        "flow_id": "f",
        "flow_version": version,
        "state": "completed",
        "owner_subject": "dana",
        "owner_issuer": "test",
        "grant_id": "grt_1",
        "input": {},
        "trace_id": "0" * 32,
        "context_id": "c",
        "created_at": now,
        "updated_at": now,
        "finished_at": now,
        "redacted_at": redacted_at,
    }


def _version(version: int, extra: dict[str, Any]) -> dict[str, Any]:
    document = {"format": "switchboard.flow/v1", "id": "f", "name": "f", "steps": [], **extra}
    return {
        "flow_id": "f",
        "version": version,
        "document": document,
        "digest": str(version),
        "created_by": "admin",
        "created_at": datetime.now(UTC),
    }


def test_an_engine_copy_left_after_the_rewrite_goes_on_a_later_pass(tmp_path: Path) -> None:
    now = datetime.now(UTC)

    async def play() -> set[str]:
        db = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'gw.db'}")
        try:
            await upgrade(db)
            async with db.begin() as conn:
                await conn.execute(
                    insert(flow_runs),
                    [
                        _run("run_just_rewritten", now - timedelta(minutes=5)),
                        _run("run_rewritten_long_ago", now - timedelta(hours=3)),
                        _run("run_not_rewritten", None),
                        _run("run_without_redact", now - timedelta(minutes=5), version=2),
                    ],
                )
                # Version 1 redacts; version 2 does not (its runs' copies stay for forks).
                await conn.execute(
                    insert(flow_versions),
                    [
                        _version(1, {"redact": ["card_number"]}),
                        _version(2, {}),
                    ],
                )
            engine = Engine(
                {
                    "run_just_rewritten",
                    "run_rewritten_long_ago",
                    "run_not_rewritten",
                    "run_without_redact",
                }
            )
            retention = RunRetention(
                db,
                None,  # type: ignore[arg-type]  # the store: not read by this pass
                engine,  # type: ignore[arg-type]
                default_days=30,
                interval_seconds=60,
            )
            await retention._forget_leftovers(now)
            return engine.stored
        finally:
            await db.dispose()

    # Only the recent one is looked at again: the not-yet-rewritten run keeps
    # its copy (a cancelled run's `resume` replays from it) and an old one is
    # the retention's own business.
    assert anyio.run(play) == {
        "run_rewritten_long_ago",
        "run_not_rewritten",
        "run_without_redact",
    }


def test_a_fork_whose_workflow_never_started_is_ended(tmp_path: Path) -> None:
    now = datetime.now(UTC)

    def fork(run_id: str, age: timedelta, state: str = "working") -> dict[str, Any]:
        row = _run(run_id, None)
        made = now - age
        row.update(state=state, forked_from="run_origin", fork_step="s", created_at=made)
        return row

    class Started(Engine):
        async def status(self, run_id: str) -> str | None:
            return "PENDING" if run_id in self.stored else None

    ended: list[str] = []

    async def unstarted(run: dict[str, Any]) -> None:
        ended.append(run["id"])

    async def play() -> None:
        db = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'gw.db'}")
        try:
            await upgrade(db)
            async with db.begin() as conn:
                await conn.execute(
                    insert(flow_runs),
                    [
                        fork("run_stuck", timedelta(minutes=10)),
                        fork("run_just_made", timedelta(seconds=5)),
                        fork("run_going", timedelta(minutes=10)),
                        fork("run_ended", timedelta(minutes=10), state="completed"),
                        {
                            **_run("run_no_fork", None),
                            "state": "working",
                            "forked_from": None,
                            "fork_step": None,
                        },
                    ],
                )
            retention = RunRetention(
                db,
                None,  # type: ignore[arg-type]  # the store: not read by this pass
                Started({"run_going"}),  # type: ignore[arg-type]
                default_days=30,
                interval_seconds=60,
                unstarted=unstarted,
            )
            await retention._unstarted_forks(now)
        finally:
            await db.dispose()

    anyio.run(play)
    assert ended == ["run_stuck"]

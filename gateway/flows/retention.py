"""What is kept of a run once it has ended, and for how long.

Once a minute (`flow_retention_interval_seconds`) each replica:

1. rewrites the stored record of every run that has ended since under its
   flow version's `redact:` rules -- the run's input and output, each step's
   input and output (`gateway.flows.redaction`) -- and marks it
   (`flow_runs.redacted_at`). A run of a flow with `redact` rules that has
   ended for the engine too (its workflow returned: DBOS `SUCCESS`) also
   loses the engine's own copy of its step results, which holds what was
   redacted; a cancelled run keeps it, since `resume` replays from it, until
   its retention ends, and so does a run without `redact` rules, since a
   fork replays from it (`gateway.flows.forks`).
2. deletes the runs that ended more than their flow's `retention_days` ago
   (default `flow_run_retention_days`; the flow's current version says, as a
   retention policy applies to what is already kept): the run, its steps, its
   grant and the engine's workflow. The audit log keeps its own records
   (`flow.run`, `flow.grant`, each step's delegation) under its own retention.
3. ends a fork whose workflow never started (the gateway stopped between
   writing its run and forking its origin's workflow), five minutes on;
4. forgets the engine's workflows of schedule ticks (`gateway.flows.schedules`:
   one per tick, whose only work is starting the tick's run) a day after they
   ended -- a schedule every minute would otherwise leave 1,440 rows a day
   for ever. Nothing reads them again: a tick's run has an id of its own
   derived from the tick, and catch-up only looks at ticks after the
   schedule last fired.

Every statement is idempotent and bounded (`BATCH` runs a pass), so replicas
sweeping at once, or a sweep cut short by a crash, only repeat work.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.flows.engine import FlowEngine
from gateway.flows.redaction import redact, rules
from gateway.flows.schedules import TICK_WORKFLOW
from gateway.flows.store import TERMINAL_RUN_STATES, FlowStore
from gateway.storage.flow_tables import flow_grants, flow_runs, flow_steps, flow_versions

logger = logging.getLogger(__name__)

BATCH = 200
LEFTOVER_WINDOW = timedelta(hours=1)
TICKS_KEPT = timedelta(days=1)
UNSTARTED_AFTER = timedelta(minutes=5)


class RunRetention:
    def __init__(
        self,
        db: AsyncEngine,
        store: FlowStore,
        engine: FlowEngine,
        *,
        default_days: float,
        interval_seconds: float,
        unstarted: Callable[[dict[str, Any]], Awaitable[None]] | None = None,
    ) -> None:
        # ``unstarted``: told of a fork whose workflow never started.
        self.unstarted = unstarted
        self.db = db
        self.store = store
        self.engine = engine
        self.default_days = default_days
        self.interval_seconds = interval_seconds

    async def sweep(self, now: datetime | None = None) -> tuple[int, int]:
        """One pass: (runs whose record was rewritten, runs deleted)."""
        now = now or datetime.now(UTC)
        rewritten = await self._rewrite_ended(now)
        deleted = await self._delete_expired(now)
        await self._forget_ticks(now)
        await self._unstarted_forks(now)
        return rewritten, deleted

    async def _unstarted_forks(self, now: datetime) -> None:
        """A fork's run is written before DBOS forks its workflow
        (`gateway.flows.forks.begin`): a gateway stopped in between leaves a
        run going with no workflow. Minutes later, such a run is ended."""
        if self.unstarted is None or not self.engine.launched:
            return
        async with self.db.connect() as conn:
            rows = (
                await conn.execute(
                    select(flow_runs)
                    .where(
                        flow_runs.c.forked_from.is_not(None),
                        flow_runs.c.state.in_(("submitted", "working")),
                        flow_runs.c.created_at < now - UNSTARTED_AFTER,
                    )
                    .limit(BATCH)
                )
            ).all()
        for row in rows:
            if await self.engine.status(row.id) is None:
                await self.unstarted(row._asdict())

    # 1. Redaction at rest -----------------------------------------------------------

    async def _rewrite_ended(self, now: datetime) -> int:
        async with self.db.connect() as conn:
            ended = (
                await conn.execute(
                    select(flow_runs.c.id, flow_runs.c.flow_id, flow_runs.c.flow_version)
                    .where(
                        flow_runs.c.state.in_(TERMINAL_RUN_STATES),
                        flow_runs.c.redacted_at.is_(None),
                    )
                    .limit(BATCH)
                )
            ).all()
        documents: dict[tuple[str, int], dict[str, Any]] = {}
        # A removed flow's runs are kept as evidence, not forked: nothing
        # expires them (retention follows a flow's current version).
        kept = {flow.id for flow in await self.store.list()} if ended else set()
        rewritten = 0
        for run_id, flow_id, version in ended:
            key = (flow_id, version)
            if key not in documents:
                documents[key] = await self._document(flow_id, version)
            if await self._engine_finishing(run_id):
                # Ended in our records, not yet in the engine's (it writes its
                # own status after the last step): rewritten on a later pass,
                # so that its copy is forgotten with it, not left behind.
                continue
            keys = rules(documents[key].get("redact") or ())
            await self._rewrite(run_id, keys, now)
            if keys or flow_id not in kept:
                # The engine's copy holds what redaction removed. Without
                # `redact` it is kept until the run's retention ends: a fork
                # (`gateway.flows.forks`) replays the steps from it.
                await self._forget_engine_copy(run_id)
            rewritten += 1
        await self._forget_leftovers(now)
        return rewritten

    async def _forget_leftovers(self, now: datetime) -> None:
        """The engine's copy of runs rewritten in the last hour that is still
        there: the engine's own last writes for a run can land after the pass
        that rewrote it found it ended (seen under load in CI); its copy holds
        what redaction removed, so it goes on a later pass."""
        if not self.engine.launched:
            return
        async with self.db.connect() as conn:
            recent = (
                await conn.execute(
                    select(flow_runs.c.id, flow_runs.c.flow_id, flow_runs.c.flow_version)
                    .where(flow_runs.c.redacted_at > now - LEFTOVER_WINDOW)
                    .limit(BATCH)
                )
            ).all()
        redacting: dict[tuple[str, int], bool] = {}
        ids = []
        for run_id, flow_id, version in recent:
            if (flow_id, version) not in redacting:
                document = await self._document(flow_id, version)
                redacting[(flow_id, version)] = bool(document.get("redact"))
            if redacting[(flow_id, version)]:
                ids.append(run_id)
        if ids:
            await self.engine.delete(await self.engine.succeeded(ids))

    async def _forget_ticks(self, now: datetime) -> None:
        if not self.engine.launched:
            return  # no flow has run here: the engine has nothing of ours
        ended = await self.engine.ended_before(TICK_WORKFLOW, now - TICKS_KEPT, BATCH)
        await self.engine.delete(ended)

    async def _document(self, flow_id: str, version: int) -> dict[str, Any]:
        async with self.db.connect() as conn:
            found = (
                await conn.execute(
                    select(flow_versions.c.document).where(
                        flow_versions.c.flow_id == flow_id, flow_versions.c.version == version
                    )
                )
            ).scalar_one_or_none()
        return dict(found or {})

    async def _rewrite(self, run_id: str, keys: frozenset[str], now: datetime) -> None:
        async with self.db.begin() as conn:
            if keys:
                run = (
                    await conn.execute(
                        select(flow_runs.c.input, flow_runs.c.output).where(
                            flow_runs.c.id == run_id
                        )
                    )
                ).one()
                await conn.execute(
                    update(flow_runs)
                    .where(flow_runs.c.id == run_id)
                    .values(input=redact(run.input, keys), output=redact(run.output, keys))
                )
                steps = (
                    await conn.execute(
                        select(flow_steps.c.step_id, flow_steps.c.input, flow_steps.c.output).where(
                            flow_steps.c.run_id == run_id
                        )
                    )
                ).all()
                for step in steps:
                    await conn.execute(
                        update(flow_steps)
                        .where(flow_steps.c.run_id == run_id, flow_steps.c.step_id == step.step_id)
                        .values(input=redact(step.input, keys), output=redact(step.output, keys))
                    )
            await conn.execute(
                update(flow_runs).where(flow_runs.c.id == run_id).values(redacted_at=now)
            )

    async def _engine_finishing(self, run_id: str) -> bool:
        if not self.engine.launched:
            return False
        return await self.engine.status(run_id) in ("PENDING", "ENQUEUED")

    async def _forget_engine_copy(self, run_id: str) -> None:
        if not self.engine.launched:
            return
        if await self.engine.status(run_id) == "SUCCESS":
            await self.engine.delete([run_id])

    # 2. Retention -----------------------------------------------------------------

    async def _delete_expired(self, now: datetime) -> int:
        deleted = 0
        for flow in await self.store.list():
            days = flow.document.get("retention_days") or self.default_days
            if days <= 0:
                continue  # kept for ever
            cutoff = now - timedelta(days=days)
            async with self.db.connect() as conn:
                expired = (
                    await conn.execute(
                        select(flow_runs.c.id, flow_runs.c.grant_id)
                        .where(
                            flow_runs.c.flow_id == flow.id,
                            flow_runs.c.state.in_(TERMINAL_RUN_STATES),
                            flow_runs.c.finished_at < cutoff,
                        )
                        .limit(BATCH)
                    )
                ).all()
            if not expired:
                continue
            run_ids = [row.id for row in expired]
            if self.engine.launched:
                await self.engine.delete(run_ids)
            async with self.db.begin() as conn:
                await conn.execute(delete(flow_steps).where(flow_steps.c.run_id.in_(run_ids)))
                await conn.execute(
                    delete(flow_grants).where(flow_grants.c.id.in_([r.grant_id for r in expired]))
                )
                await conn.execute(delete(flow_runs).where(flow_runs.c.id.in_(run_ids)))
            logger.info(
                "deleted %d run(s) of flow %s ended before %s", len(run_ids), flow.id, cutoff
            )
            deleted += len(run_ids)
        return deleted

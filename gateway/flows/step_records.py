"""Writing a step's record (`flow_steps`) so that recovery never rewrites it.

DBOS recovers a run by running its workflow again from the start: the
operations it recorded return their results without running, but the
workflow's own code between them runs again -- among it the writes that mark
a map or a parallel step running and then done, a route taken, a step
skipped. Written as at first, they would give a step finished before the
crash the time of the replay, and one in flight a start after its own
branches'. So such a write (``replayable``) never moves a record back:

* ``started_at`` is kept once set;
* a settled record (completed, failed, skipped, not needed) takes a write of
  its own state only, keeping its ``finished_at``; any other is left out --
  the replay passes through states the record is already beyond.

The writes made inside a recorded operation (a call's attempt, a review's
reset: they run once, or again only when they never finished) are not
replayable: they change the record as they say.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import case, func, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.storage.tables import flow_steps

# The states a step does not leave again unless a review resets it.
SETTLED = ("completed", "failed", "skipped", "not_needed")


async def write_step(
    engine: AsyncEngine, run_id: str, step_id: str, *, replayable: bool, **values: Any
) -> None:
    """Create or update the step's record (``kind`` and ``trace_id`` needed to create)."""
    c = flow_steps.c
    this = (c.run_id == run_id, c.step_id == step_id)
    changes = dict(values)
    statement = update(flow_steps).where(*this)
    if replayable:
        state = values.get("state")
        if changes.get("started_at") is not None:
            changes["started_at"] = func.coalesce(c.started_at, changes["started_at"])
        if state is not None:
            statement = statement.where(or_(c.state.not_in(SETTLED), c.state == state))
            if changes.get("finished_at") is not None:
                changes["finished_at"] = case(
                    (c.state == state, func.coalesce(c.finished_at, changes["finished_at"])),
                    else_=changes["finished_at"],
                )
    async with engine.begin() as conn:
        changed = await conn.execute(statement.values(**changes))
        if changed.rowcount:
            return
        if replayable:  # refused, or missing?
            found = await conn.execute(select(c.state).where(*this))
            if found.first() is not None:
                return
        values.setdefault("attempts", 0)
        values.setdefault("state", "pending")
        await conn.execute(insert(flow_steps).values(run_id=run_id, step_id=step_id, **values))

"""Deleting a flow's records (`FlowService.delete`, `DELETE /flows/{id}`).

The flow's current version and every version, and its ended runs with their
steps and grants, go in one transaction -- or nothing does: a run that has
not ended refuses the whole deletion (`FlowHasActiveRuns`), so that no run
is left to follow a flow that is gone. The flow's agent, the engine's copy
of the runs and the audit record are the service's part.
"""

from __future__ import annotations

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.flows.store import TERMINAL_RUN_STATES, FlowNotFound
from gateway.storage.tables import flow_grants, flow_runs, flow_steps, flow_versions, flows

# Rows deleted per statement: well under every backend's bound parameters.
_CHUNK = 500


class FlowHasActiveRuns(Exception):
    """A flow cannot be deleted while runs of it have not ended."""

    def __init__(self, flow_id: str, run_ids: list[str]) -> None:
        more = ", ..." if len(run_ids) > 5 else ""
        super().__init__(
            f"flow {flow_id} has {len(run_ids)} run(s) not ended ({', '.join(run_ids[:5])}"
            f"{more}): cancel them, or delete with cancel=true"
        )
        self.run_ids = run_ids


async def delete_flow(engine: AsyncEngine, flow_id: str) -> list[str]:
    """Delete the flow's versions and its ended runs; the ids of the runs
    deleted. Raises `FlowNotFound`, and `FlowHasActiveRuns` (nothing deleted)."""
    async with engine.begin() as conn:
        found = await conn.scalar(select(flows.c.id).where(flows.c.id == flow_id))
        if found is None:
            raise FlowNotFound(flow_id)
        runs = (
            await conn.execute(
                select(flow_runs.c.id, flow_runs.c.grant_id, flow_runs.c.state).where(
                    flow_runs.c.flow_id == flow_id
                )
            )
        ).all()
        active = [r.id for r in runs if r.state not in TERMINAL_RUN_STATES]
        if active:
            raise FlowHasActiveRuns(flow_id, active)
        for start in range(0, len(runs), _CHUNK):
            chunk = runs[start : start + _CHUNK]
            ids = [r.id for r in chunk]
            await conn.execute(delete(flow_steps).where(flow_steps.c.run_id.in_(ids)))
            await conn.execute(
                delete(flow_grants).where(flow_grants.c.id.in_([r.grant_id for r in chunk]))
            )
            await conn.execute(delete(flow_runs).where(flow_runs.c.id.in_(ids)))
        await conn.execute(delete(flow_versions).where(flow_versions.c.flow_id == flow_id))
        await conn.execute(delete(flows).where(flows.c.id == flow_id))
    return [r.id for r in runs]


async def active_runs(engine: AsyncEngine, flow_id: str) -> list[str]:
    """The ids of the flow's runs that have not ended."""
    async with engine.connect() as conn:
        rows = await conn.execute(
            select(flow_runs.c.id).where(
                flow_runs.c.flow_id == flow_id,
                flow_runs.c.state.not_in(TERMINAL_RUN_STATES),
            )
        )
        return [str(r) for r in rows.scalars()]

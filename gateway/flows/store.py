"""Flow definitions and their versions; runs, their steps and their grants.

What a run *does* next is DBOS's (`gateway.flows.engine`); these tables are
what the gateway shows of it (`GET /flows/{id}/runs/{run}`) and what its
steps need across a crash (the upstream task id of a call in flight, the
durable grant). Every write here is idempotent: a step that runs again after
a crash writes the same row again.
"""

from __future__ import annotations

import builtins
import functools
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import and_, delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from gateway.flows import reservations, step_records
from gateway.flows.definition import FlowDocument
from gateway.flows.definition_versions import VersionDocuments, save_version
from gateway.flows.models import (
    FlowRecord,
    FlowVersion,
    RunView,
    TokenUsage,
)
from gateway.flows.run_views import flow_record, run_view, step_view
from gateway.flows.spending import Spending, runs_usage, summed, usage_of
from gateway.storage.flow_tables import flow_grants, flow_runs, flow_steps, flow_versions, flows
from gateway.storage.statements import Sql, statement_runner
from gateway.storage.tables import upstream_connections
from registry.tables import agents, as_utc

# Parsed flow versions kept per process (a version's document never changes).
TERMINAL_RUN_STATES = frozenset({"completed", "failed", "canceled", "rejected"})


def _now() -> datetime:
    return datetime.now(UTC)


class FlowNotFound(Exception):
    pass


class RunNotFound(Exception):
    pass


class FlowStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self.spending = Spending(engine)
        # What every run and step reads and writes goes the lean way
        # (`gateway.flows.step_records`, `gateway.storage.statements`).
        self._run = statement_runner(engine)
        self.reservations = reservations.Reservations(self._run)
        self._versions = VersionDocuments(engine)

    async def aclose(self) -> None:
        await self._run.aclose()

    # Definitions ------------------------------------------------------------------

    async def save(
        self, document: dict[str, Any], by: str, conn: AsyncConnection | None = None
    ) -> tuple[int, bool]:
        """Store ``document`` as the flow's next version unless it is unchanged
        (in ``conn``'s transaction when given). Returns (version, changed)."""
        if conn is None:
            async with self._engine.begin() as own:
                return await self.save(document, by, own)
        return await save_version(conn, document, by)

    async def get(self, flow_id: str) -> FlowRecord:
        async with self._engine.connect() as conn:
            row = (await conn.execute(select(flows).where(flows.c.id == flow_id))).first()
        if row is None:
            raise FlowNotFound(flow_id)
        return flow_record(row._asdict())

    async def list(self) -> builtins.list[FlowRecord]:
        async with self._engine.connect() as conn:
            rows = (await conn.execute(select(flows).order_by(flows.c.id))).all()
        return [flow_record(r._asdict()) for r in rows]

    async def any(self) -> bool:
        async with self._engine.connect() as conn:
            return (await conn.scalar(select(flows.c.id).limit(1))) is not None

    async def active_runs(self, flow_id: str) -> builtins.list[str]:
        """The ids of the flow's runs that have not ended, oldest first."""
        query = (
            select(flow_runs.c.id)
            .where(flow_runs.c.flow_id == flow_id, flow_runs.c.state.not_in(TERMINAL_RUN_STATES))
            .order_by(flow_runs.c.created_at)
        )
        async with self._engine.connect() as conn:
            return [row[0] for row in await conn.execute(query)]

    async def delete(self, flow_id: str) -> None:
        """The flow (its current document). Its versions stay, as its runs do:
        a run's record is read, and redacted, by its own version's rules; a
        flow registered again under the id goes on from the last version."""
        async with self._engine.begin() as conn:
            await conn.execute(delete(flows).where(flows.c.id == flow_id))

    async def versions(self, flow_id: str) -> builtins.list[FlowVersion]:
        """A registered flow's versions (a removed flow's are kept, not listed)."""
        async with self._engine.connect() as conn:
            rows = (
                await conn.execute(
                    select(flow_versions)
                    .where(
                        flow_versions.c.flow_id == flow_id,
                        select(flows.c.id).where(flows.c.id == flow_id).exists(),
                    )
                    .order_by(flow_versions.c.version.desc())
                )
            ).all()
        if not rows:
            raise FlowNotFound(flow_id)
        return [
            FlowVersion(
                version=r.version,
                digest=r.digest,
                created_by=r.created_by,
                created_at=as_utc(r.created_at),
                document=r.document,
            )
            for r in rows
        ]

    async def current_version(self, flow_id: str) -> int:
        """The flow's latest version (`FlowNotFound`: no such flow, or removed)."""
        found = await self._run.read(step_records.current_version, flow_id)
        if found is None:
            raise FlowNotFound(flow_id)
        return found

    async def parsed(self, flow_id: str, version: int) -> FlowDocument:
        """A version's document, parsed once: a stored version never changes."""
        return self._versions.parsed(flow_id, version, await self.version(flow_id, version))

    async def version(self, flow_id: str, version: int) -> dict[str, Any]:
        """A version's document as stored (read once; not to be changed)."""
        document = await self._versions.document(flow_id, version)
        if document is None:
            raise FlowNotFound(f"{flow_id} version {version}")
        return document

    # Runs -------------------------------------------------------------------------

    def creation(self, run: dict[str, Any], grant: dict[str, Any]) -> Callable[[Sql], None]:
        """The run and its grant stored, as a lean operation for a transaction
        of another store's: the run's task is recorded with them
        (`FlowRuntime.publish`). It raises `RunNotStored` if the run's id (or
        its grant's) is taken, which rolls the whole transaction back."""
        now = _now()
        row = {"created_at": now, "updated_at": now, "finished_at": None, **run}
        return functools.partial(step_records.create_run, run=row, grant=grant)

    async def run_row(self, run_id: str) -> dict[str, Any]:
        row = await self._run.read(step_records.run_row, run_id)
        if row is None:
            raise RunNotFound(run_id)
        return row

    async def set_run(self, run_id: str, **values: Any) -> bool:
        """Update a run that has not ended (an ended run stays as it ended)."""
        return await self._run(self.run_write(run_id, **values))

    def run_write(self, run_id: str, **values: Any) -> Callable[[Sql], bool]:
        """`set_run` as a lean operation, for a transaction of another store's."""
        values["updated_at"] = _now()
        if values.get("state") in TERMINAL_RUN_STATES:
            values["finished_at"] = values["updated_at"]
            return functools.partial(reservations.end_run, run_id=run_id, values=values)
        return functools.partial(step_records.set_run, run_id=run_id, values=values)

    async def runs(
        self,
        flow_id: str | None,
        *,
        owner: tuple[str, str] | None = None,
        limit: int = 50,
        state: str | None = None,
        since: datetime | None = None,
    ) -> builtins.list[RunView]:
        """Runs newest first: of one flow (None: every flow), ``owner``'s, in
        ``state``, started since ``since``."""
        query = select(flow_runs)
        if flow_id is not None:
            query = query.where(flow_runs.c.flow_id == flow_id)
        if owner is not None:
            query = query.where(
                flow_runs.c.owner_subject == owner[0], flow_runs.c.owner_issuer == owner[1]
            )
        if state is not None:
            query = query.where(flow_runs.c.state == state)
        if since is not None:
            query = query.where(flow_runs.c.created_at >= since)
        async with self._engine.connect() as conn:
            rows = (
                await conn.execute(query.order_by(flow_runs.c.created_at.desc()).limit(limit))
            ).all()
            # What a listing (the console's runs, with their cost) shows.
            used = await runs_usage(conn, [r.id for r in rows])
        return [run_view(r._asdict(), None, [], usage=used.get(r.id)) for r in rows]

    async def view(self, run_id: str) -> RunView:
        row, grant, steps = await self._run.read(step_records.run_view, run_id)
        if row is None:
            raise RunNotFound(run_id)
        return run_view(row, grant, [step_view(s) for s in steps])

    async def reopen(self, run_id: str) -> None:
        """A cancelled or failed run goes on (`FlowService.resume`)."""
        async with self._engine.begin() as conn:
            await conn.execute(
                update(flow_runs)
                .where(flow_runs.c.id == run_id)
                .values(
                    state="working",
                    error=None,
                    finished_at=None,
                    redacted_at=None,
                    updated_at=_now(),
                )
            )

    async def set_agent_contracts(self, agent_id: str, contracts: dict[str, Any]) -> None:
        """The flow's agent record takes the new version's input contract."""
        async with self._engine.begin() as conn:
            await conn.execute(
                update(agents).where(agents.c.id == agent_id).values(skill_contracts=contracts)
            )

    # Grants -----------------------------------------------------------------------

    async def grant(self, grant_id: str) -> dict[str, Any]:
        row = await self._run.read(step_records.grant_row, grant_id)
        if row is None:
            raise RunNotFound(grant_id)
        return row

    async def revoke(self, grant_id: str, by: str, reason: str | None) -> bool:
        async with self._engine.begin() as conn:
            changed = await conn.execute(
                update(flow_grants)
                .where(flow_grants.c.id == grant_id, flow_grants.c.revoked_at.is_(None))
                .values(revoked_at=_now(), revoked_by=by, revoke_reason=reason)
            )
        return bool(changed.rowcount)

    # Steps ------------------------------------------------------------------------

    async def step_row(self, run_id: str, step_id: str) -> dict[str, Any] | None:
        return await self._run.read(step_records.step_row, run_id, step_id)

    async def reuse_steps(self, origin: str, run_id: str, step_ids: tuple[str, ...]) -> None:
        """Copy ``origin``'s records of ``step_ids`` to the fork ``run_id``
        (`gateway.flows.forks`): marked ``reused_from``, without usage -- the
        fork neither sent nor spent anything on them."""
        if not step_ids:
            return
        async with self._engine.begin() as conn:
            rows: list[Any] = []
            for at in range(0, len(step_ids), 500):  # bound parameters per statement
                rows += (
                    await conn.execute(
                        select(flow_steps).where(
                            flow_steps.c.run_id == origin,
                            flow_steps.c.step_id.in_(step_ids[at : at + 500]),
                        )
                    )
                ).all()
            # Usage left out, so SQL NULL (a JSON column stores None as JSON null).
            copies = [{**r._asdict(), "run_id": run_id, "reused_from": origin} for r in rows]
            for copy in copies:
                del copy["usage"]
            if copies:
                await conn.execute(insert(flow_steps), copies)

    async def connection_of(
        self, subject: str, issuer: str, upstream: str
    ) -> dict[str, Any] | None:
        """The user's connection at ``upstream`` as a run waiting for one
        compares it (`gateway.flows.consents`): its id, version and scope."""
        table = upstream_connections.c
        query = select(table.id, table.version, table.scope).where(
            table.upstream == upstream, table.issuer == issuer, table.subject == subject
        )
        async with self._engine.connect() as conn:
            row = (await conn.execute(query)).first()
        if row is None:
            return None
        return {"id": row.id, "version": int(row.version), "scope": row.scope or ""}

    async def waiting_for_consent(self, subject: str, issuer: str) -> builtins.list[str]:
        """The runs of this user that wait for them to connect an account."""
        runs = flow_runs.c
        query = (
            select(runs.id)
            .where(
                runs.state == "auth_required",
                runs.finished_at.is_(None),
                runs.owner_subject == subject,
                runs.owner_issuer == issuer,
            )
            .order_by(runs.created_at)
            .limit(1000)
        )
        async with self._engine.connect() as conn:
            return [row.id for row in await conn.execute(query)]

    async def waiting_for(
        self, flow_id: str, target: str, key: str
    ) -> builtins.list[tuple[str, tuple[str, str]]]:
        """The runs of the flow whose current step waits on ``target`` with
        ``key`` (a keyed event wait: `gateway.flows.waits`), each with its
        owner (subject, issuer)."""
        runs, steps = flow_runs.c, flow_steps.c
        query = (
            select(runs.id, runs.owner_subject, runs.owner_issuer)
            .select_from(
                flow_runs.join(
                    flow_steps, and_(steps.run_id == runs.id, steps.step_id == runs.current_step)
                )
            )
            .where(
                runs.flow_id == flow_id,  # ix_flow_runs_flow
                runs.finished_at.is_(None),
                steps.kind == "wait",
                steps.state == "waiting",
                steps.target == target,
                steps.upstream_task_id == key,
            )
            .order_by(runs.created_at)
            .limit(100)
        )
        async with self._engine.connect() as conn:
            found = await conn.execute(query)
            return [(row.id, (row.owner_subject, row.owner_issuer)) for row in found]

    async def run_usage(self, run_id: str) -> TokenUsage | None:
        """The usage the run's steps reported, summed (None: none reported)."""
        usages = await self._run.read(step_records.run_usages, run_id)
        return summed(usage_of(usage) for usage in usages)

    async def enter_step(
        self, run_id: str, step_id: str, grant_id: str, *, current: bool
    ) -> tuple[dict[str, Any] | None, dict[str, Any]]:
        """What a call step starts from, in one transaction (each transaction
        through the async driver is a thread hop and a pool checkout, a share of
        a step's CPU worth saving): the step's row as a crash left it (or None),
        the run's grant as it is now, and -- ``current`` -- the run's
        ``current_step`` moved to it (an ended run is left as it ended)."""
        row, grant = await self._run(
            step_records.enter_step, run_id, step_id, grant_id, current, _now()
        )
        if grant is None:
            raise RunNotFound(grant_id)
        return row, grant

    async def set_step(
        self, run_id: str, step_id: str, *, replayable: bool = False, **values: Any
    ) -> None:
        """Create or update the step's record (``kind`` and ``trace_id`` needed to
        create); ``replayable``: written by workflow code that recovery runs
        again, so it never moves the record back (`step_records`)."""
        await self._run(step_records.write_step, run_id, step_id, replayable, values)


def new_run_id() -> str:
    return "run_" + uuid.uuid4().hex


def new_grant_id() -> str:
    return "grt_" + uuid.uuid4().hex

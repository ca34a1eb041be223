"""The durable engine: DBOS Transact, in this process, on the gateway's database.

DBOS is a library, not a server: `DBOS.launch()` creates (and migrates) its
system tables and recovers this executor's unfinished workflows. Its system
database is the gateway's own:

* SQLite: the same file (DBOS's tables -- ``workflow_status``,
  ``operation_outputs``, ``notifications``, ... -- next to the gateway's;
  DBOS opens it with the stdlib ``sqlite3`` driver, IMMEDIATE transactions
  and a 30 s busy timeout, the gateway with aiosqlite in WAL mode; both
  through `gateway.storage.sqlite_gate`, so their writers wait for each
  other on a lock, not in SQLite's sleeping busy handler);
* PostgreSQL: the same database, in the ``dbos`` schema (DBOS uses psycopg 3;
  the URL is the gateway's with the driver swapped).

A run's workflow is `gateway.flows.runner.run_flow`; its async code runs on
the gateway's own event loop (a run DBOS starts on its own loop hops
there, `gateway.flows.home_loop`). DBOS is one per process, so one gateway per process runs flows;
the engine starts only once a flow exists (at start-up if one is stored,
else when the first is registered), so a gateway without flows pays nothing.

``application_version`` is fixed (`ENGINE_VERSION`) rather than DBOS's hash
of the workflow code: a run started before an upgrade is recovered by the
upgraded gateway (the walk reads the run's pinned flow version; step names
are stable). Change it only with a note on what happens to runs in flight.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
from collections.abc import Callable, Coroutine
from datetime import datetime
from typing import Any, TypeVar

from dbos import DBOS, DBOSConfig, DBOSPortableJSONSerializer, SetWorkflowID
from sqlalchemy.engine import make_url

from gateway.compat import dbos as compat
from gateway.flows import home_loop, preemption, runner
from gateway.flows.runtime import FlowRuntime
from gateway.storage.periodic import ALONE_SECONDS
from gateway.storage.sqlite_gate import GatedConnection

logger = logging.getLogger(__name__)

ENGINE_VERSION = "switchboard-flows-1"
SCHEMA = "dbos"
# How often DBOS's background threads read the database when they have
# nothing to do (`gateway.compat.dbos.quiet_when_idle`): a work item put on
# its queue here is looked for at once, one put there by a replica that
# died before taking it within this.
IDLE_POLL_SECONDS = 30.0
# How long `FlowEngine.stop` waits for DBOS calls still in their threads.
CALLS_STOP_SECONDS = 10.0

T = TypeVar("T")
_CALLS: set[asyncio.Future[Any]] = set()


async def ended_before_stop(call: Coroutine[Any, Any, T]) -> T:
    """``call``, a DBOS call that runs in a thread (a listing, a recovery),
    which `FlowEngine.stop` waits for before DBOS is destroyed. Cancelled on
    the loop (a periodic job stopped with the gateway), such a call goes on in
    its thread; once its database is gone (a test's, dropped after the stop)
    DBOS retries it for ever, logging each retry into the next test. Shielded
    and waited for, it ends while the database is still there."""
    task = asyncio.ensure_future(call)
    _CALLS.add(task)
    task.add_done_callback(_settled)
    return await asyncio.shield(task)


def _settled(task: asyncio.Future[Any]) -> None:
    _CALLS.discard(task)
    if not task.cancelled():
        task.exception()  # retrieved: its caller may have gone


_OWNER: object | None = None


class EngineUnavailable(Exception):
    pass


def system_database_url(gateway_url: str) -> str:
    """The gateway's database, as DBOS's (synchronous) drivers open it."""
    url = make_url(gateway_url)
    backend = url.get_backend_name()
    if backend == "sqlite":
        return url.set(drivername="sqlite").render_as_string(hide_password=False)
    if backend == "postgresql":
        return url.set(drivername="postgresql").render_as_string(hide_password=False)
    raise EngineUnavailable(f"flows need SQLite or PostgreSQL, not {backend}")


def dbos_table(dialect: str, table: str) -> str:
    """DBOS's ``table`` as named on a database of ``dialect``: in schema
    ``dbos`` on PostgreSQL, beside the gateway's tables on SQLite."""
    return f"dbos.{table}" if dialect == "postgresql" else table


class FlowEngine:
    def __init__(
        self,
        database_url: str,
        rt: FlowRuntime,
        *,
        executor_id: str = "local",
        notification_poll_seconds: float = 2.0,
        alone: Callable[[], bool] | None = None,
        pool_size: int = 20,
    ) -> None:
        """``alone``: whether no other replica runs (`ReplicaDirectory.alone`):
        DBOS's idle reads are rarer then (`compat.IdleGates`)."""
        self._url = system_database_url(database_url)
        self.rt = rt
        self._executor_id = executor_id
        self._poll = notification_poll_seconds
        self._pool_size = pool_size  # PostgreSQL: the system database's connections
        self._alone = alone
        self._launched = False
        self._dbos: DBOS | None = None
        self._lock = asyncio.Lock()

    @property
    def launched(self) -> bool:
        return self._launched

    @property
    def executor_id(self) -> str:
        return self._executor_id

    def _config(self) -> DBOSConfig:
        """DBOS's configuration for this gateway."""
        config: DBOSConfig = {
            "name": "switchboard",
            "system_database_url": self._url,
            "application_version": ENGINE_VERSION,
            "executor_id": self._executor_id,
            "dbos_system_schema": SCHEMA,
            "serializer": DBOSPortableJSONSerializer(),
            "log_level": "WARNING",
            "notification_listener_polling_interval_sec": self._poll,
            "enable_otlp": False,
        }
        if make_url(self._url).get_backend_name() == "sqlite":
            # DBOS's writers wait for this process's others on a lock
            # rather than in SQLite's sleeping busy handler
            # (`gateway.storage.sqlite_gate`); a file needs no ping per
            # checkout.
            config["db_engine_kwargs"] = {
                "connect_args": {"factory": GatedConnection},
                "pool_pre_ping": False,
            }
        else:
            # No ping (a round trip) before each of DBOS's transactions,
            # about 13 a run: a connection a server restart broke fails its
            # first statement instead, SQLAlchemy then replaces every pooled
            # connection older than it ("Dealing with Disconnects"), and
            # DBOS retries the operation once it reconnects (``db_retry``:
            # a connection error blocks the workflow, never fails it). The
            # rest are DBOS's defaults (no overflow); the pool's size is this
            # worker's share (`database_connections`).
            config["db_engine_kwargs"] = {"pool_pre_ping": False}
            config["sys_db_pool_size"] = self._pool_size
        return config

    async def ensure(self) -> None:
        """Launch DBOS for this event loop, once; runs left unfinished start again."""
        if self._launched:
            return
        async with self._lock:
            if self._launched:
                return
            global _OWNER
            if _OWNER is not None and _OWNER is not self:
                raise EngineUnavailable(
                    "another gateway in this process runs flows (DBOS is one per process)"
                )
            config = self._config()
            # DBOS's own schema migrations first, off the event loop: some
            # build indexes CONCURRENTLY, which waits for every open
            # transaction in the database -- including this gateway's, which
            # could never finish while the loop is blocked in DBOS.launch()
            # (a deadlock seen on PostgreSQL). Launch then finds nothing to do.
            await asyncio.to_thread(DBOS.migrate, self._url, schema=SCHEMA)
            # Launched off the loop. On SQLite launch takes the write lock
            # (BEGIN IMMEDIATE); launched on the loop it blocked the loop while
            # it waited, and a gateway transaction holding that lock across an
            # await could then never finish: launch failed after DBOS's 30 s
            # busy timeout ("database is locked", and POST /flows timed out,
            # both seen in CI under load). Off the loop it waits like any
            # writer. The runs DBOS starts from its queue (recovered ones too)
            # hop to this loop themselves (`gateway.flows.home_loop`).
            runner.install(self.rt)
            home_loop.settle()
            _OWNER = self
            try:
                self._dbos = DBOS(config=config)
                await asyncio.to_thread(DBOS.launch)
                compat.quiet_when_idle(self._dbos, IDLE_POLL_SECONDS, self._alone, ALONE_SECONDS)
                compat.launched_here(self._dbos)
            except BaseException:
                _OWNER = None
                runner.install(None)
                home_loop.leave()
                with contextlib.suppress(Exception):
                    DBOS.destroy()
                raise
            self._launched = True
            logger.info(
                "flow engine (DBOS Transact) launched on %s", make_url(self._url).get_backend_name()
            )

    async def stop(self) -> None:
        """Stop the runs in progress here where they are (they go on at the next
        start, from their last completed step) and shut DBOS down."""
        global _OWNER
        if not self._launched:
            return
        tasks = list(runner.running())
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(BaseException):
                await task
        if _CALLS:
            await asyncio.wait(list(_CALLS), timeout=CALLS_STOP_SECONDS)
        if self._dbos is not None and make_url(self._url).get_backend_name() == "sqlite":
            # Its listener sleeps a whole poll between looks; it ends by
            # itself (`gateway.compat.dbos.leave_listener_unjoined`).
            compat.leave_listener_unjoined(self._dbos)
        self._dbos = None
        compat.launched_here(None)
        await asyncio.to_thread(DBOS.destroy)
        runner.install(None)
        home_loop.leave()
        self._launched = False
        if _OWNER is self:
            _OWNER = None

    # Runs -------------------------------------------------------------------------

    async def start(self, run_id: str) -> None:
        await self.ensure()

        async def start() -> None:
            with SetWorkflowID(run_id):
                await DBOS.start_workflow_async(runner.run_flow, run_id)

        # A run is always a workflow of its own, also when a step of another
        # run starts it (a flow calling a flow): started outside that step's
        # DBOS context, which would make it the step's child.
        await asyncio.create_task(start(), context=contextvars.Context())

    async def fork(self, origin: str, run_id: str, position: int) -> None:
        """Run ``run_id`` as a fork of ``origin`` (`gateway.flows.forks`): DBOS
        copies the origin's operations before ``position`` and queues the new
        workflow, under this engine's version (the code that will replay them)."""
        await self.ensure()

        async def fork() -> None:
            with SetWorkflowID(run_id):
                await DBOS.fork_workflow_async(origin, position, application_version=ENGINE_VERSION)

        await asyncio.create_task(fork(), context=contextvars.Context())

    async def cancel(self, run_id: str) -> None:
        await self.ensure()
        await DBOS.cancel_workflow_async(run_id)
        # Its call in flight here stops now, not at the next look.
        preemption.cancelled_here(run_id)

    async def resume(self, run_id: str) -> None:
        await self.ensure()
        await DBOS.resume_workflow_async(run_id)

    async def status(self, run_id: str) -> str | None:
        await self.ensure()
        status: Any = await DBOS.get_workflow_status_async(run_id)
        return None if status is None else str(status.status)

    # Replicas ---------------------------------------------------------------------

    async def pending_executors(self) -> set[str]:
        """The executors (replicas) that own unfinished runs."""
        await self.ensure()
        found: list[Any] = await ended_before_stop(
            DBOS.list_workflows_async(
                status="PENDING", app_version=ENGINE_VERSION, load_input=False, load_output=False
            )
        )
        return {str(w.executor_id) for w in found if w.executor_id}

    async def recover(self, executor_ids: list[str]) -> list[str]:
        """Take up the unfinished runs of ``executor_ids`` (replicas that are gone).

        DBOS puts each back on its internal queue only while it is still
        PENDING under one of those executors, and a queued run is dequeued by
        exactly one live executor, which then owns it: two replicas taking
        over the same dead one at once start each run once.
        """
        await self.ensure()
        # DBOS's own recovery (gateway.compat.dbos says why not the public API).
        handles = await ended_before_stop(
            asyncio.to_thread(compat.recover_pending_workflows, executor_ids)
        )
        return [handle.get_workflow_id() for handle in handles]

    async def succeeded(self, run_ids: list[str]) -> list[str]:
        """Those of ``run_ids`` whose workflow is stored and has returned."""
        await self.ensure()
        found: list[Any] = await ended_before_stop(
            DBOS.list_workflows_async(
                workflow_ids=run_ids, status="SUCCESS", load_input=False, load_output=False
            )
        )
        return [str(w.workflow_id) for w in found]

    async def ended_before(self, name: str, before: datetime, limit: int) -> list[str]:
        """Ids of ``name`` workflows that returned or failed before ``before``."""
        await self.ensure()
        found: list[Any] = await ended_before_stop(
            DBOS.list_workflows_async(
                name=name,
                status=["SUCCESS", "ERROR"],
                completed_before=before.isoformat(),
                limit=limit,
                load_input=False,
                load_output=False,
            )
        )
        return [str(w.workflow_id) for w in found]

    async def delete(self, run_ids: list[str]) -> None:
        """Forget runs' workflows: their inputs, step results and status."""
        if not run_ids:
            return
        await self.ensure()
        await DBOS.delete_workflows_async(run_ids)

    async def operations(self, run_id: str) -> list[dict[str, Any]]:
        """DBOS's record of the run's operations (position, name), without
        their outputs but the first's -- "begin" (`gateway.flows.forks`)."""
        await self.ensure()
        found: list[Any] = await DBOS.list_workflow_steps_async(run_id, load_output=False)
        first: list[Any] = await DBOS.list_workflow_steps_async(run_id, load_output=True, limit=1)
        listed = [dict(step) for step in found]
        if listed and first:
            listed[0] = {**listed[0], "output": dict(first[0]).get("output")}
        return listed

    async def steps(self, run_id: str) -> list[dict[str, Any]]:
        """DBOS's own record of the run's steps (name, when, error): for tests and debugging."""
        await self.ensure()
        found: list[Any] = await DBOS.list_workflow_steps_async(run_id)
        return [dict(step) for step in found]

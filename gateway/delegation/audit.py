"""The audit log: one record per decision, allow or deny.

Records are buffered and written in batches by one writer, in order. The
buffer is flushed at least every `audit_flush_seconds`, when it reaches a
batch, before every audit read, and at shutdown. A caller that outruns the
database waits: the log never silently drops a decision.

A decision's record is durable no later than its outcome is acknowledged
(docs/delegation.md, audit): the core records a call's outcome, and a
refusal, with ``durable=True``, which returns once the record is committed
-- a group commit: a caller finding no write under way lets the loop turn once (the
calls ready in that turn add theirs), then the first of them writes everything
buffered, the records that came in while it wrote included, and the others find
theirs written. So a
gateway killed after answering a caller, or after a flow stored a step's
outcome, has the record of that call. Not an INSERT of its own beside the
task's row: one writer per process keeps its records' ids in commit order,
which the audit export reads by (`gateway.audit_export`). Records no caller
waits for (a flow's own events, an outage answered) gather `audit_flush_seconds`.

While the database is down, records are kept in the buffer (recording never
fails the call that records, and a durable record stops waiting once a write
has failed: the call's own outcome is not stored either, then) and the writer
retries with backoff, from `RETRY_SECONDS` doubling to `MAX_RETRY_SECONDS`;
once the database answers, everything kept is written in order. Past
`MAX_BUFFERED` records, or at a shutdown that cannot write them, each record
goes to the log at ERROR as one JSON line (logger ``gateway.delegation.audit``),
so none is lost without a trace.

What is recorded: time, user (sub + issuer), client, actor chain, target,
skill/tool, scopes asked and granted, decision, reasons, outcome, latency, trace
id, the minted token's `jti`, what a decision was made on. Never a token value.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

from sqlalchemy import insert
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters import spans
from adapters.core_check import require_core
from gateway.delegation.audit_reads import AuditPage, AuditQuery, AuditRecord, audit_page
from gateway.delegation.audit_records import AuditEvent, new_writer_id
from gateway.storage.audit_tables import audit_events
from gateway.storage.outages import data_refused
from gateway.storage.statements import Sql, StatementRunner, statement_runner
from gateway.storage.typed_statement import Statement

logger = logging.getLogger(__name__)

_BATCH = 500  # records kept before the caller recording one writes them (back-pressure)
MAX_BUFFERED = 100_000
RETRY_SECONDS = 0.5
MAX_RETRY_SECONDS = 30.0
# Written at most this many at a time, each time on the lean path
# (`gateway.storage.statements`' `patiently`: on SQLite one transaction on
# the loop's own connection once the write lock is free, ~3 ms for 100
# rows here), so that no writer holds SQLite's write lock across event-loop
# turns or while its thread waits for the interpreter: through the engine a
# batch held it 118-481 ms under load, every other writer waiting.
_WRITTEN_AT_ONCE = 100
_COLUMNS = [c.name for c in audit_events.c if c.name != "id"]
_INSERT = Statement(
    audit_events,
    f"INSERT INTO audit_events ({', '.join(_COLUMNS)})"  # noqa: S608 -- the table's own names
    f" VALUES ({', '.join(':' + c for c in _COLUMNS)})",
)


class AuditLog:
    def __init__(
        self, engine: AsyncEngine, flush_seconds: float = 0.05, writer: str | None = None
    ) -> None:
        self._engine = engine
        self._lean: StatementRunner | None = None  # opened at the first write
        # This process's name on its records: one process writes one batch at
        # a time, so its records' ids are in commit order (`gateway.audit_export`).
        self.writer = writer or new_writer_id()
        self._flush_seconds = flush_seconds
        self._buffer: list[dict[str, Any]] = []
        # How many records were ever buffered, and how many of them are
        # written (or refused by the database): a record is durable once
        # ``_written`` reaches the count it was buffered at.
        self._kept = 0
        self._written = 0
        self._wake = asyncio.Event()
        self._lock = asyncio.Lock()
        self._unsettled: asyncio.Future[None] | None = None  # see `_write`
        self.failing_since: float | None = None  # monotonic, while writes fail
        # Told of every event as it is recorded (metrics, the security log);
        # must not block.
        self.listeners: list[Callable[[AuditEvent], None]] = []

    async def record(self, event: AuditEvent, *, durable: bool = False) -> None:
        """Keep ``event`` for the writer; never raises for a database outage.
        ``durable``: return once it is written (see the module's docstring)."""
        if event.token_id is not None:  # a call's record: the core's (`adapters.core_check`)
            require_core("the audit record of a call")
        with spans.span("switchboard.record", trace_id=event.trace_id) as span:
            if span is not None:  # tracing on: the record's span, in its trace
                span.set_attributes(
                    {
                        "switchboard.event": event.event,
                        "switchboard.decision": event.decision,
                        "switchboard.outcome": event.outcome,
                    }
                )
            await self._keep(event, durable)

    async def _keep(self, event: AuditEvent, durable: bool = False) -> None:
        for listener in self.listeners:
            listener(event)
        row = event.row()
        row["writer"] = self.writer
        if len(self._buffer) >= MAX_BUFFERED:
            _spill([row], "audit buffer full while the database is unavailable")
            return
        self._buffer.append(row)
        self._kept += 1
        try:
            if self.failing_since is None and (durable or len(self._buffer) >= _BATCH):
                if durable and not self._lock.locked():
                    # A group commit needs company: the statement runs on the
                    # loop when the connection is free, so the first waiter
                    # would write alone. One turn of the loop lets the calls
                    # ready in it add their records first; the first flush
                    # then writes them all.
                    await asyncio.sleep(0)
                try:
                    # Written up to this record (durable), or back-pressure
                    # instead of unbounded memory.
                    await self.flush(until=self._kept if durable else None)
                except Exception:
                    # Kept in the buffer; the writer retries with backoff.
                    self._failed()
        finally:
            # What is left is the background writer's: this record too,
            # should its caller be cancelled before it is written.
            if self._buffer:
                self._wake.set()

    def _failed(self) -> None:
        if self.failing_since is None:
            self.failing_since = asyncio.get_running_loop().time()
            logger.error(
                "audit records cannot be written (the database is unavailable?); "
                "keeping them (%d now) and retrying",
                len(self._buffer),
            )

    async def record_now(self, event: AuditEvent) -> None:
        """`record`, then written at once (a record recovery writes must survive
        another crash); kept for the writer if the database is down."""
        await self.record(event)
        try:
            await self.flush()
        except Exception:
            self._failed()

    async def flush(self, until: int | None = None) -> None:
        """Write what is buffered; ``until``: return as soon as the records
        buffered up to that count are (another's flush may have written them)."""
        async with self._lock:
            if self._unsettled is not None:
                # A write whose caller went away ends, and is counted, before
                # another begins: the records stay in the order they were made.
                await asyncio.wait([self._unsettled])
            if until is not None and (self._written >= until or self.failing_since is not None):
                # Written by another's flush, or the write before this one
                # failed: a durable record stops waiting then (the writer retries).
                return
            while self._buffer and (until is None or self._written < until):
                batch = self._buffer[:_WRITTEN_AT_ONCE]
                self._buffer = self._buffer[_WRITTEN_AT_ONCE:]
                # A caller waiting for its record (``until``) joins the
                # writers' queue at once; the background writer and
                # back-pressure wait on the loop for a free lock.
                await self._write(batch, patiently=until is None)
                if self._buffer:
                    await asyncio.sleep(0)  # the loop's other work between batches
            if self.failing_since is not None:
                logger.warning("audit records are written again")
                self.failing_since = None

    async def _write(self, batch: list[dict[str, Any]], *, patiently: bool) -> None:
        """``batch`` written: at once on the loop if the database takes it
        without a wait (nothing a cancellation can cut), else in a task of
        its own: a caller cancelled while it runs leaves it to end (a SQLite
        worker thread cannot be stopped, a COMMIT sent may land), and the
        write's own outcome says whether its records are counted written or
        kept for the next attempt -- never both (a record written twice),
        nor neither."""
        if self._written_now(batch):
            return  # on the loop, all at once: nothing a cancellation could cut
        writing = asyncio.ensure_future(self._written_or_kept(batch, patiently))
        try:
            await asyncio.shield(writing)
        except asyncio.CancelledError:
            if not writing.done():
                self._unsettled = writing
            writing.add_done_callback(self._settled)
            raise

    def _written_now(self, batch: list[dict[str, Any]]) -> bool:
        """``batch`` written at once if the database takes it without a wait
        (`StatementRunner.now`), and counted. Any error: not written, and
        left to the full path (`_insert`), which says what it is."""
        try:
            done, _ = self._runner().now(_insert_rows, batch)
        except Exception:
            return False
        except BaseException:
            self._buffer[:0] = batch  # not written (rolled back): kept for the next attempt
            raise
        if done:
            self._written += len(batch)
        return done

    async def _written_or_kept(self, batch: list[dict[str, Any]], patiently: bool) -> None:
        try:
            await self._insert(batch, patiently=patiently)
        except DBAPIError as exc:
            if not data_refused(exc):
                self._buffer[:0] = batch  # the database is down: retry later
                raise
            # One row the database refuses must not block every later
            # record: write the rest one by one, report the refused.
            await self._insert_one_by_one(batch)
        except BaseException:
            self._buffer[:0] = batch  # keep them for the next attempt
            raise
        self._written += len(batch)

    def _settled(self, writing: asyncio.Future[None]) -> None:
        """A write whose caller went away has ended: a failure is the log's,
        what is left the background writer's."""
        if self._unsettled is writing:
            self._unsettled = None
        if not writing.cancelled() and writing.exception() is not None:
            self._failed()
        if self._buffer:
            self._wake.set()

    async def _insert(self, batch: list[dict[str, Any]], *, patiently: bool = True) -> None:
        lean = self._runner()
        run = lean.patiently if patiently else lean
        try:
            await run(_insert_rows, batch)
            return
        except Exception:  # noqa: S110 -- said again by the engine's path, which sorts it
            pass  # an outage, a row refused: the engine's path says which
        async with self._engine.begin() as conn:
            await conn.execute(insert(audit_events), batch)

    def _runner(self) -> StatementRunner:
        if self._lean is None:
            self._lean = statement_runner(self._engine)
        return self._lean

    async def _insert_one_by_one(self, batch: list[dict[str, Any]]) -> None:
        for done, row in enumerate(batch):
            try:
                await self._insert_or_drop(row)
            except BaseException:
                # Down midway: those not written yet kept for the next
                # attempt (the ones before are in the table already).
                self._buffer[:0] = batch[done:]
                self._written += done
                raise

    async def _insert_or_drop(self, row: dict[str, Any]) -> None:
        """One record written, or dropped (and logged) if the database
        refuses its data; an outage raises."""
        try:
            async with self._engine.begin() as conn:
                await conn.execute(insert(audit_events), [row])
        except DBAPIError as exc:
            if not data_refused(exc):
                raise
            logger.error(
                "audit record refused by the database and dropped "
                "(trace %s, subject %s, target %s): %s",
                row.get("trace_id"),
                row.get("subject"),
                row.get("target"),
                type(exc.orig).__name__ if exc.orig is not None else type(exc).__name__,
            )

    async def run_forever(self) -> None:
        delay = RETRY_SECONDS
        while True:
            await self._wake.wait()
            await asyncio.sleep(self._flush_seconds)  # gather a batch
            self._wake.clear()
            try:
                await self.flush()
            except Exception:
                self._failed()
                self._wake.set()
                await asyncio.sleep(delay)
                delay = min(delay * 2, MAX_RETRY_SECONDS)
            else:
                delay = RETRY_SECONDS

    async def close(self) -> None:
        try:
            await self.flush()
        except Exception:
            _spill(self._buffer, "audit records not written at shutdown")
            self._buffer = []
        lean, self._lean = self._lean, None
        if lean is not None:
            await lean.aclose()

    # Reads ------------------------------------------------------------------

    async def query(self, query: AuditQuery) -> AuditPage:
        await self.flush()  # what was recorded is read back
        return await audit_page(self._engine, query)

    async def export(self, query: AuditQuery) -> AsyncIterator[AuditRecord]:
        """Every matching record, newest first, a page at a time."""
        page_query = query.model_copy(update={"limit": 1000, "after_id": None})
        while True:
            page = await self.query(page_query)
            for item in page.items:
                yield item
            if page.next_cursor is None:
                return
            page_query = page_query.model_copy(update={"cursor": page.next_cursor})


def _insert_rows(sql: Sql, batch: list[dict[str, Any]]) -> None:
    sql.typed_many(_INSERT, batch)


def _spill(rows: list[dict[str, Any]], why: str) -> None:
    """The records the database could not take, to the log, one JSON line each."""
    for row in rows:
        logger.error("%s: %s", why, json.dumps(row, default=str, sort_keys=True))

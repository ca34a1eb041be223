"""The audit export to a SIEM: every audit record, as it is written, to each
configured sink -- at least once, and in order per writer (docs/operations.md,
"Audit export").

One `Periodic` job per sink in every process: each pass claims the streams
it may deliver (`SqlExportStreams.claim`: its own writer's, and those of
replicas gone) and drains them batch by batch,
moving a stream's cursor only once its sink took the batch. A batch the sink
did not take waits, with capped and jittered exponential backoff
(`gateway.delegation.retry.delays`), and is sent again -- the same records,
the same ids, the same batch -- until it is taken (or, with
`audit_export_max_attempts` set, that many times). A batch refused for good
(400, 413, 415, 422, or records the receiver rejected) is sent record by
record, and what is refused on its own becomes dead letters (kept, logged at
ERROR, shown by `GET /audit/export`, replayable); the stream goes on.
Nothing is dropped without a record of it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

from gateway.audit_export.sinks import DeliveryFailed, Sink
from gateway.audit_export.streams import SqlExportStreams, Stream
from gateway.delegation.audit_reads import AuditRecord
from gateway.delegation.retry import RetrySettings, delays
from gateway.storage.replicas import ReplicaDirectory

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ExportLimits:
    batch_size: int = 200
    # Tries of a batch a sink does not take before it becomes dead letters;
    # None: tried until it is taken (a receiver down for an hour loses nothing).
    max_attempts: int | None = None
    base_delay_seconds: float = 1.0
    max_delay_seconds: float = 60.0
    # One pass stops draining after this long.
    pass_budget_seconds: float = 20.0
    # One delivery, whole (a receiver trickling its answer is cut off).
    delivery_seconds: float = 20.0


@dataclass(frozen=True)
class ReplayOutcome:
    replayed: int
    missing: int  # dead letters whose record retention had removed: forgotten
    failed: str | None


Counted = Callable[[str, str, int], None]  # (sink, "delivered" | "dead_letter", records)


class AuditExporter:
    def __init__(
        self,
        streams: SqlExportStreams,
        sink: Sink,
        writer: str,
        limits: ExportLimits,
        counted: Counted | None = None,
        *,
        replicas: ReplicaDirectory,
    ) -> None:
        self.streams = streams
        self.sink = sink
        self.writer = writer  # this process's records
        self.replicas = replicas  # this process's replica: the streams' holder
        self.holder = replicas.id
        self.limits = limits
        # Told of each batch delivered or kept as dead letters (`/metrics`).
        self.counted = counted or (lambda _sink, _outcome, _records: None)

    async def run_pass(self) -> None:
        # This process's own records always have a stream (one retired while
        # this process looked gone is set up again).
        await self.streams.ensure(self.sink.name, self.writer, self.holder)
        deadline = time.monotonic() + self.limits.pass_budget_seconds
        claimed = await self.streams.claim(self.sink.name, self.replicas)
        for stream in claimed:
            if time.monotonic() >= deadline:
                break
            await self._drain(stream, deadline)

    async def _drain(self, stream: Stream, deadline: float) -> None:
        while time.monotonic() < deadline:
            records = await self.streams.batch(stream, self.limits.batch_size)
            if not records:
                if stream.writer != self.writer:
                    await self.streams.retire(stream, self.holder)
                return
            try:
                await self._deliver(batch_id(stream.writer, records), records)
            except DeliveryFailed as failure:
                if failure.permanent and len(records) > 1:
                    await self._one_by_one(stream, records)
                else:
                    await self._failed(stream, records, failure)
                return
            if not await self.streams.delivered(stream, self.holder, records[-1].id, len(records)):
                return  # another replica holds the stream now
            self.counted(self.sink.name, "delivered", len(records))
            stream = _past(stream, records[-1].id)

    async def _deliver(self, batch: str, records: list[AuditRecord]) -> None:
        try:
            async with asyncio.timeout(self.limits.delivery_seconds):
                await self.sink.deliver(batch, records)
        except TimeoutError:
            raise DeliveryFailed(f"no answer within {self.limits.delivery_seconds:g} s") from None

    async def _one_by_one(self, stream: Stream, records: list[AuditRecord]) -> None:
        """A batch refused for good: each record on its own, so that one the
        sink cannot take does not take its batch to the dead letters."""
        for record in records:
            try:
                await self._deliver(batch_id(stream.writer, [record]), [record])
            except DeliveryFailed as failure:
                if not failure.permanent:
                    await self._failed(stream, [record], failure)
                    return
                if not await self._dead_letters(stream, [record], str(failure)):
                    return
            else:
                if not await self.streams.delivered(stream, self.holder, record.id, 1):
                    return
                self.counted(self.sink.name, "delivered", 1)
            stream = _past(stream, record.id)

    async def _failed(
        self, stream: Stream, records: list[AuditRecord], failure: DeliveryFailed
    ) -> None:
        attempts = stream.failures + 1
        most = self.limits.max_attempts
        if failure.permanent or (most is not None and attempts >= most):
            why = str(failure) if failure.permanent else f"{failure} (after {attempts} attempts)"
            await self._dead_letters(stream, records, why)
            return
        # Full jitter under a cap that doubles with each failure of this batch.
        ceiling = min(
            self.limits.max_delay_seconds, self.limits.base_delay_seconds * 2**stream.failures
        )
        wait = next(delays(RetrySettings(2, ceiling, ceiling)))
        await self.streams.failed(stream, self.holder, records[-1].id, str(failure), wait)
        if stream.failures == 0:  # once per failing stretch, not once per try
            logger.warning("audit export to %s failing, retrying: %s", self.sink.name, failure)

    async def _dead_letters(self, stream: Stream, records: list[AuditRecord], why: str) -> bool:
        if not await self.streams.dead_letter(stream, self.holder, records, why):
            return False
        self.counted(self.sink.name, "dead_letter", len(records))
        logger.error(
            "audit export to %s: records %d-%d of writer %s kept as dead letters: %s",
            self.sink.name,
            records[0].id,
            records[-1].id,
            stream.writer,
            why,
        )
        return True

    async def replay(self, limit: int) -> ReplayOutcome:
        """Send the oldest ``limit`` dead letters again, in order; each taken
        is forgotten. Stops at the first batch the sink does not take."""
        letters = await self.streams.dead_letter_records(self.sink.name, limit)
        gone = [letter for letter, record in letters if record is None]
        kept = [(letter, record) for letter, record in letters if record is not None]
        if gone:
            await self.streams.forget_dead_letters(gone)
        replayed = 0
        for start in range(0, len(kept), self.limits.batch_size):
            chunk = kept[start : start + self.limits.batch_size]
            records = [record for _, record in chunk]
            try:
                await self.sink.deliver(batch_id("replay", records), records)
            except DeliveryFailed as failure:
                return ReplayOutcome(replayed, len(gone), str(failure))
            await self.streams.forget_dead_letters([letter for letter, _ in chunk])
            replayed += len(chunk)
        return ReplayOutcome(replayed, len(gone), None)


def _past(stream: Stream, last_id: int) -> Stream:
    """``stream`` once its cursor moved to ``last_id``: no batch in flight."""
    return replace(stream, last_id=last_id, failures=0, batch_until=None)


def batch_id(writer: str, records: list[AuditRecord]) -> str:
    """The same batch, the same id, on every attempt."""
    return f"{writer}:{records[0].id}-{records[-1].id}"

"""The audit export to a SIEM: every audit record, as it is written, to each
configured sink -- at least once, and in order per writer (docs/operations.md,
"Audit export").

One `Periodic` job per sink in every process: each pass claims the streams
it may deliver (`SqlExportStreams.claim`) and drains them batch by batch,
moving a stream's cursor only once its sink took the batch. A batch the sink
did not take waits, with capped and jittered exponential backoff
(`gateway.delegation.retry.delays`), and is sent again -- the same records,
the same ids; one it refused for good, or could not take in
`audit_export_max_attempts` tries, becomes dead letters (kept, logged at
ERROR, shown by `GET /audit/export`, replayable) and the stream goes on.
Nothing is dropped without a record of it.
"""

from __future__ import annotations

import itertools
import logging
import time
from dataclasses import dataclass

from gateway.audit_export.sinks import DeliveryFailed, Sink
from gateway.audit_export.streams import SqlExportStreams, Stream
from gateway.delegation.audit import AuditRecord
from gateway.delegation.retry import RetrySettings, delays

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ExportLimits:
    batch_size: int = 200
    max_attempts: int = 12
    base_delay_seconds: float = 1.0
    max_delay_seconds: float = 60.0
    lease_seconds: float = 60.0
    # One pass stops draining after this long (its lease must outlast it).
    pass_budget_seconds: float = 20.0


@dataclass(frozen=True)
class ReplayOutcome:
    replayed: int
    missing: int  # dead letters whose record retention had removed: forgotten
    failed: str | None


class AuditExporter:
    def __init__(
        self, streams: SqlExportStreams, sink: Sink, owner: str, limits: ExportLimits
    ) -> None:
        self.streams = streams
        self.sink = sink
        self.owner = owner
        self.limits = limits
        self._backoff = RetrySettings(
            attempts=limits.max_attempts + 1,
            base_delay_seconds=limits.base_delay_seconds,
            max_delay_seconds=limits.max_delay_seconds,
        )

    async def run_pass(self) -> None:
        deadline = time.monotonic() + self.limits.pass_budget_seconds
        claimed = await self.streams.claim(self.sink.name, self.owner, self.limits.lease_seconds)
        for stream in claimed:
            if time.monotonic() >= deadline:
                break
            await self._drain(stream, deadline)

    async def _drain(self, stream: Stream, deadline: float) -> None:
        while time.monotonic() < deadline:
            records = await self.streams.batch(
                stream.writer, stream.last_id, self.limits.batch_size
            )
            if not records:
                return
            try:
                await self.sink.deliver(batch_id(stream.writer, records), records)
            except DeliveryFailed as failure:
                await self._failed(stream, records, failure)
                return
            if not await self.streams.delivered(stream, self.owner, records[-1].id, len(records)):
                return  # another process holds the stream now
            stream = Stream(stream.sink, stream.writer, records[-1].id, 0)

    async def _failed(
        self, stream: Stream, records: list[AuditRecord], failure: DeliveryFailed
    ) -> None:
        attempts = stream.failures + 1
        if failure.permanent or attempts >= self.limits.max_attempts:
            why = (
                f"{failure} (after {attempts} attempts)" if not failure.permanent else str(failure)
            )
            if await self.streams.dead_letter(stream, self.owner, records, why):
                logger.error(
                    "audit export to %s: records %d-%d of writer %s kept as dead letters: %s",
                    self.sink.name,
                    records[0].id,
                    records[-1].id,
                    stream.writer,
                    why,
                )
            return
        wait = next(itertools.islice(delays(self._backoff), stream.failures, None))
        await self.streams.failed(stream, self.owner, str(failure), wait)
        if stream.failures == 0:  # once per failing stretch, not once per try
            logger.warning("audit export to %s failing, retrying: %s", self.sink.name, failure)

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


def batch_id(writer: str, records: list[AuditRecord]) -> str:
    """The same batch, the same id, on every attempt."""
    return f"{writer}:{records[0].id}-{records[-1].id}"

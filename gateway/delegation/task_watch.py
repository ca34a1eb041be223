"""A wait for a task's next record in this process (`TaskRecords.watch`)."""

from __future__ import annotations

import asyncio
import contextlib


class TaskWatch:
    """`TaskRecords.watch`: set whenever this process records the task. A
    record written by another replica does not set it, so a follower still
    reads the record now and then (`next`'s ``seconds``)."""

    def __init__(self) -> None:
        self.changed = asyncio.Event()

    async def next(self, seconds: float) -> None:
        """Until this process records the task (since the last call), or
        ``seconds`` pass; then the record is read again by the caller."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self.changed.wait()
        self.changed.clear()

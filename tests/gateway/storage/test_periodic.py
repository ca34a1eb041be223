"""The periodic jobs' loop (`gateway.storage.periodic`): a failing pass never
ends a job, a failing stretch is logged once each way, an outage reads as one,
and a pass can be asked for now. Passes are awaited by condition, not time:
each test's interval is an hour unless woken, and an hour that must pass
passes on the test's clock (`tests.support.clock`)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import pytest

from gateway.storage.outages import DependencyUnavailable
from gateway.storage.periodic import ALONE_SECONDS, Pace, Periodic, next_due, paced_by_company
from tests.support import clock as fake_clock

HOUR = 3600.0


class Script:
    """A job that fails with the next of ``errors`` (None: succeeds), and
    signals each pass."""

    def __init__(self, *errors: Exception | None) -> None:
        self.errors = list(errors)
        self.passes = 0
        self.passed = asyncio.Event()

    async def __call__(self) -> None:
        self.passes += 1
        self.passed.set()
        error = self.errors.pop(0) if self.errors else None
        if error is not None:
            raise error


async def next_pass(job: Periodic, script: Script, *, wake: bool = True) -> None:
    script.passed.clear()
    if wake:
        job.wake()
    await asyncio.wait_for(script.passed.wait(), 5)
    await asyncio.sleep(0)  # the pass's outcome is recorded


async def test_a_failing_pass_never_ends_the_job_and_is_logged_once_each_way(
    caplog: pytest.LogCaptureFixture,
) -> None:
    script = Script(ValueError("bug one"), ValueError("bug two"), None, None)
    job = Periodic("sweeper", HOUR, script)
    running = asyncio.create_task(job.run_forever())
    with caplog.at_level(logging.DEBUG, logger="gateway.storage.periodic"):
        await next_pass(job, script, wake=False)  # the first pass runs at once
        assert job.state.failing == "ValueError: bug one"
        await next_pass(job, script)
        await next_pass(job, script)
        assert job.state.failing is None and job.state.last_ok is not None
        await next_pass(job, script)
    running.cancel()
    with pytest.raises(asyncio.CancelledError):
        await running
    assert (job.state.runs, job.state.failures) == (4, 2)
    said = [(r.levelname, r.getMessage()) for r in caplog.records]
    assert said == [
        ("ERROR", "sweeper failed"),
        ("DEBUG", "sweeper: still failing: bug two"),
        ("WARNING", "sweeper: running again (was failing: ValueError: bug one)"),
    ]
    assert caplog.records[0].exc_info is not None  # a bug comes with its traceback


async def test_an_outage_is_said_as_one_without_a_traceback(
    caplog: pytest.LogCaptureFixture,
) -> None:
    script = Script(DependencyUnavailable("database", "OperationalError"))
    job = Periodic("retention", HOUR, script)
    with caplog.at_level(logging.INFO, logger="gateway.storage.periodic"):
        assert await job.run_once() is False
    [record] = caplog.records
    assert record.getMessage() == (
        "retention: paused while the database is unavailable: OperationalError"
    )
    assert record.exc_info is None


def test_a_job_that_waits_first_runs_only_when_due_or_woken() -> None:
    """On the test's clock (`tests.support.clock`): the hour passes at once."""

    async def scenario() -> None:
        script = Script()
        job = Periodic("later", HOUR, script, now=False)
        running = asyncio.create_task(job.run_forever())
        await asyncio.sleep(HOUR - 1)  # all but the last second of its wait
        assert script.passes == 0
        await next_pass(job, script)  # woken
        assert script.passes == 1
        await asyncio.sleep(HOUR - 1)  # a new wait from the woken pass
        assert script.passes == 1
        await next_pass(job, script, wake=False)  # due
        assert script.passes == 2
        running.cancel()
        with pytest.raises(asyncio.CancelledError):
            await running

    fake_clock.run(scenario())


async def test_the_interval_is_read_before_each_wait() -> None:
    script = Script()
    intervals = [HOUR, 0.0]
    job = Periodic("reloader", lambda: intervals[0], script)
    running = asyncio.create_task(job.run_forever())
    await next_pass(job, script, wake=False)
    intervals[0] = 0.0  # a setting changed: the next wait is none
    await next_pass(job, script)  # the hour-long wait, cut short
    await next_pass(job, script, wake=False)  # then due at once, unwoken
    running.cancel()
    with pytest.raises(asyncio.CancelledError):
        await running
    assert script.passes >= 3


async def test_cancelling_stops_a_pass_in_progress() -> None:
    started, never = asyncio.Event(), asyncio.Event()

    async def slow() -> None:
        started.set()
        await never.wait()

    job = Periodic("slow", HOUR, slow)
    running = asyncio.create_task(job.run_forever())
    await asyncio.wait_for(started.wait(), 5)
    running.cancel()
    with pytest.raises(asyncio.CancelledError):
        await running
    assert job.state.failures == 0  # a cancellation is not a failure


async def test_a_failing_stretch_that_changes_kind_is_said_again(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The database back, then a bug: the bug is logged with its traceback,
    not hidden behind the outage."""
    outage = DependencyUnavailable("database", "OperationalError")
    script = Script(outage, outage, KeyError("k"), KeyError("k"))
    job = Periodic("checker", HOUR, script)
    with caplog.at_level(logging.INFO, logger="gateway.storage.periodic"):
        for _ in range(4):
            assert await job.run_once() is False
    said = [(r.levelname, r.getMessage(), r.exc_info is not None) for r in caplog.records]
    assert said == [
        ("ERROR", "checker: paused while the database is unavailable: OperationalError", False),
        ("ERROR", "checker failed", True),
    ]
    assert job.state.failing == "KeyError: 'k'"


@pytest.mark.parametrize(
    ("due", "ended", "fixed_rate", "then"),
    [
        (100.0, 100.5, True, 110.0),  # fixed rate: one interval after it was due
        (100.0, 100.5, False, 110.5),  # otherwise: one interval after it ended
        (100.0, 112.0, True, 112.0),  # ran past the next: at once, not behind for ever
        (100.0, 112.0, False, 122.0),
    ],
)
def test_when_the_next_pass_is_due(due: float, ended: float, fixed_rate: bool, then: float) -> None:
    assert next_due(due, ended, 10.0, fixed_rate=fixed_rate) == then


def test_a_job_paced_by_company_looks_rarely_while_alone_and_is_woken_by_company() -> None:
    """`paced_by_company`: its own interval while another replica runs, a
    minute while alone, and woken when the replicas seen move."""

    async def scenario() -> None:
        script = Script()
        alone = [True]
        told: list[Callable[[], None]] = []
        job = paced_by_company(Periodic("watch", 2.0, script), lambda: alone[0], told)
        assert job.interval() == ALONE_SECONDS
        running = asyncio.create_task(job.run_forever())
        await next_pass(job, script, wake=False)  # the first pass, at once
        await asyncio.sleep(ALONE_SECONDS - 1)
        assert script.passes == 1  # alone: not every 2 s
        alone[0] = False  # another replica is seen: the heartbeat tells
        for wake in told:
            wake()
        await next_pass(job, script, wake=False)
        assert job.interval() == 2.0
        await asyncio.sleep(2.5)
        assert script.passes == 3  # at its own pace again
        running.cancel()
        with pytest.raises(asyncio.CancelledError):
            await running

    fake_clock.run(scenario())


def test_a_pace_alone_looks_once_a_minute_unless_it_found_or_kept_work() -> None:
    pace = Pace(busy=0.5, idle=30.0, found=False)
    alone = [False]
    told: list[Callable[[], None]] = []
    pace.alone_when(lambda: alone[0], told)
    assert pace.seconds() == 30.0
    alone[0] = True
    assert pace.seconds() == ALONE_SECONDS
    pace.looked(True)
    assert pace.seconds() == 0.5  # work found: busy, alone or not
    pace.looked(False)
    pace.kept()
    assert pace.seconds() == 0.5
    woken: list[bool] = []
    pace.wake = lambda: woken.append(True)
    for wake in told:
        wake()
    assert woken == [True]

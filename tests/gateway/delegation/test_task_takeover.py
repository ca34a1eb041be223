"""Who runs a gateway-run task nobody runs any more (`TaskTakeover.tick`), on a
real database: two replicas' runners, their replica directories
(`gateway.storage.replicas`) with the judging replica's clock in the test's
hand, and an upstream that answers when the test says so.

The rule is the replica directory's, the one flow runs follow: the runs of a
replica that is gone -- no row (a clean stop), or a stale one judged by a
replica steady itself -- are taken over; those of a replica alive are not.
A replica's own run whose coroutine died is taken back by that replica; one
stored but not started yet is not mistaken for it.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import cast

import pytest
from a2a.server.events.event_queue import Event
from a2a.types import Task, TaskState
from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters.base import Turn
from gateway.agents.admission import FrontDoorParts
from gateway.agents.vendor import GatewayRun
from gateway.agents.vendor_run import VendorExecution
from gateway.delegation import task_runner
from gateway.delegation.permits import Caller
from gateway.delegation.pipeline import Grant
from gateway.delegation.run_rows import RunLost
from gateway.delegation.runs import RunSpec
from gateway.delegation.task_runner import TaskRunner
from gateway.delegation.task_takeover import TaskTakeover
from gateway.delegation.tasks import Owner, TaskRecords
from gateway.storage.leases import NO_LEASE
from gateway.storage.replicas import ReplicaDirectory
from gateway.storage.tables import gateway_replicas, gateway_runs
from tests.support.clock import Clock

ALICE = Owner("alice", "https://issuer.example")
ALICE_CALLS = Caller(ALICE.subject, ALICE.issuer, frozenset(), ("client",), "client")
HEARTBEAT, STALE = 1.0, 3.0
# What `TaskRunner.sending` keeps of a grant: its token's id, scopes, action.
GRANT = cast(
    Grant,
    SimpleNamespace(
        token=SimpleNamespace(token_id="jti-1"),
        decision=SimpleNamespace(granted=frozenset({"chat"})),
        action="answer",
    ),
)


class Upstream:
    """Counts each task's calls; answers them all once `release` is set."""

    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()
        self.called = asyncio.Event()
        self.release = asyncio.Event()
        self.idempotent = False
        self.broken = False
        # Keeps what it sends in the run's row first, as a run sent again does.
        self.sending: TaskRunner | None = None

    async def run(self, spec: RunSpec, grant: Grant | None) -> AsyncGenerator[Event]:
        if self.sending is not None:
            await self.sending.sending(spec, GRANT, "a2a.run")
        self.calls[spec.task_id] += 1
        self.called.set()
        await self.release.wait()
        done = Task(id=spec.task_id, context_id=spec.context_id)
        done.status.state = TaskState.TASK_STATE_COMPLETED
        yield done

    async def is_idempotent(self, agent_id: str, skill: str | None) -> bool:
        if self.broken:
            raise RuntimeError("the registry is broken")
        return self.idempotent


class Replica:
    def __init__(self, name: str, engine: AsyncEngine, upstream: Upstream) -> None:
        self.clock = Clock()
        self.engine = engine
        self.directory = ReplicaDirectory(
            "http://127.0.0.1:1",
            replica_id=name,
            heartbeat_seconds=HEARTBEAT,
            stale_seconds=STALE,
            clock=self.clock,
        )
        self.tasks = TaskRecords(engine)
        self.runner = TaskRunner(engine, self.tasks, lambda: upstream.run, replicas=self.directory)
        self.takeover = TaskTakeover(
            engine,
            self.runner,
            self.directory,
            poll_seconds=0.5,
            idempotent=upstream.is_idempotent,
        )

    async def steady(self) -> None:
        """Renewed its own row, a heartbeat apart, for a whole stale window."""
        await self.directory.announce(self.engine)
        while not self.directory.steady():
            self.clock.now += HEARTBEAT
            await self.directory.renew()

    async def store(self, task_id: str) -> RunSpec:
        """The task recorded with its run's row, as a call to a vendor agent
        does, not started."""
        made = spec(task_id)
        task = Task(id=task_id, context_id=made.context_id)
        task.status.state = TaskState.TASK_STATE_SUBMITTED
        assert await self.tasks.record("chat", ALICE, task, with_rows=self.runner.stored(made))
        return made

    async def state(self, task_id: str) -> str:
        task = await self.tasks.get("chat", ALICE, task_id)
        assert task is not None
        return str(TaskState.Name(task.status.state))


def spec(task_id: str) -> RunSpec:
    turn = Turn(text="hi", skill="answer", task_id=task_id, context_id="ctx-" + task_id)
    return RunSpec("chat", task_id, "ctx-" + task_id, ALICE_CALLS, "trace", turn, streaming=False)


async def runner_of(engine: AsyncEngine, task_id: str) -> str | None:
    async with engine.connect() as conn:
        found: str | None = await conn.scalar(
            select(gateway_runs.c.runner).where(gateway_runs.c.task_id == task_id)
        )
    return found


async def attempts_by_task(engine: AsyncEngine) -> dict[str, int]:
    async with engine.connect() as conn:
        rows = await conn.execute(select(gateway_runs.c.task_id, gateway_runs.c.attempts))
        return {str(task_id): int(attempts) for task_id, attempts in rows}


async def claimed(engine: AsyncEngine, task_id: str, runner: str, attempts: int) -> None:
    """Run ``task_id`` claimed by ``runner`` (`TaskTakeover._take`), its ``attempts``-th."""
    async with engine.begin() as conn:
        await conn.execute(
            update(gateway_runs)
            .where(gateway_runs.c.task_id == task_id)
            .values(runner=runner, attempts=attempts)
        )


async def seen(engine: AsyncEngine, replica_id: str, ago: float) -> None:
    """Replica ``replica_id``'s row, last renewed ``ago`` seconds ago."""
    async with engine.begin() as conn:
        await conn.execute(
            insert(gateway_replicas).values(
                id=replica_id,
                url="http://127.0.0.1:2",
                seen_at=datetime.now(UTC) - timedelta(seconds=ago),
            )
        )


@pytest.fixture
def upstream() -> Upstream:
    return Upstream()


@pytest.fixture
async def here(engine: AsyncEngine, upstream: Upstream) -> AsyncIterator[Replica]:
    replica = Replica("here", engine, upstream)
    yield replica
    upstream.release.set()
    await replica.runner.aclose()


@pytest.fixture
def there(engine: AsyncEngine, upstream: Upstream) -> Replica:
    """The other replica: only its rows are used (its runs are not started
    here, as if running in another process)."""
    return Replica("there", engine, upstream)


async def test_a_live_replicas_run_stays_its_own(
    engine: AsyncEngine, here: Replica, there: Replica, upstream: Upstream
) -> None:
    await here.steady()
    await seen(engine, "there", ago=0)
    await there.store("t-alive")
    await here.takeover.tick()
    assert await runner_of(engine, "t-alive") == "there"
    assert await here.state("t-alive") == "TASK_STATE_SUBMITTED"
    assert upstream.calls["t-alive"] == 0


async def test_a_run_of_a_replica_that_stopped_cleanly_is_taken_at_once(
    engine: AsyncEngine, here: Replica, there: Replica, upstream: Upstream
) -> None:
    await here.directory.announce(engine)  # just started: not steady, yet judges an absent row
    assert not here.directory.steady()
    await there.store("t-left")  # there has no row: it withdrew it
    await here.takeover.tick()
    # Not idempotent: not sent again, and the task says why.
    assert await here.state("t-left") == "TASK_STATE_FAILED"
    assert await runner_of(engine, "t-left") is None
    assert upstream.calls["t-left"] == 0


async def test_an_idempotent_run_taken_over_is_sent_again_once(
    engine: AsyncEngine, here: Replica, there: Replica, upstream: Upstream
) -> None:
    upstream.idempotent = True
    await here.directory.announce(engine)
    await there.store("t-again")
    await here.takeover.tick()
    assert await runner_of(engine, "t-again") == "here"
    await here.takeover.tick()  # alive here now: not taken a second time
    upstream.release.set()
    await here.runner.wait("chat", "t-again")
    assert await here.state("t-again") == "TASK_STATE_COMPLETED"
    assert upstream.calls["t-again"] == 1


async def test_a_stale_replicas_run_is_taken_only_by_a_steady_replica(
    engine: AsyncEngine, here: Replica, there: Replica
) -> None:
    # As after a database outage: the other's row looks stale, and this
    # replica has not been renewing its own for a stale window either.
    await here.directory.announce(engine)
    await seen(engine, "there", ago=STALE * 2)
    await there.store("t-stale")
    await here.takeover.tick()
    assert await runner_of(engine, "t-stale") == "there"
    await here.steady()
    await here.takeover.tick()
    assert await here.state("t-stale") == "TASK_STATE_FAILED"


async def test_a_run_stored_but_not_started_is_not_taken_for_its_replicas_orphan(
    engine: AsyncEngine, here: Replica, upstream: Upstream
) -> None:
    await here.steady()
    made = await here.store("t-new")  # committed; its caller starts it next
    await here.takeover.tick()
    async with engine.connect() as conn:
        attempts = await conn.scalar(
            select(gateway_runs.c.attempts).where(gateway_runs.c.task_id == "t-new")
        )
    assert attempts == 1  # not claimed
    assert await here.state("t-new") == "TASK_STATE_SUBMITTED"
    await here.runner.start(made, None, new=False)
    upstream.release.set()
    await here.runner.wait("chat", "t-new")
    assert await here.state("t-new") == "TASK_STATE_COMPLETED"
    assert upstream.calls["t-new"] == 1


async def test_a_run_whose_coroutine_died_is_taken_back_by_its_own_replica(
    engine: AsyncEngine, here: Replica, upstream: Upstream
) -> None:
    await here.steady()
    made = await here.store("t-died")
    await here.runner.start(made, None, new=False)
    await upstream.called.wait()
    [run] = [r for (_, t), r in here.runner._runs.items() if t == "t-died"]
    assert run.task is not None
    run.task.cancel()  # lost to a bug: the task is not ended, the row stays
    with pytest.raises(asyncio.CancelledError):
        await run.task
    assert await runner_of(engine, "t-died") == "here"
    await here.takeover.tick()
    assert await here.state("t-died") == "TASK_STATE_FAILED"
    assert await runner_of(engine, "t-died") is None


async def test_a_run_canceled_by_another_replica_stops_here(
    engine: AsyncEngine, here: Replica, there: Replica, upstream: Upstream
) -> None:
    await here.steady()
    made = await here.store("t-cancel")
    await here.runner.start(made, None, new=False)
    await upstream.called.wait()
    assert await there.runner.cancel("chat", "t-cancel")  # not running there: ended in the rows
    await here.takeover.tick()
    await here.runner.wait("chat", "t-cancel")
    assert not any(t == "t-cancel" for (_, t) in here.runner._runs)
    upstream.release.set()
    assert await here.state("t-cancel") == "TASK_STATE_CANCELED"


async def test_a_run_of_an_older_gateway_is_taken_once_its_lease_has_passed(
    engine: AsyncEngine, here: Replica, there: Replica, upstream: Upstream
) -> None:
    # A gateway from before the replica directory names its runs by a random
    # runner id with no replica row, and renews each run's lease: in a rolling
    # upgrade its live runs stay its own.
    upstream.idempotent = True
    await here.steady()
    await there.store("t-old")
    async with engine.begin() as conn:
        await conn.execute(
            update(gateway_runs)
            .where(gateway_runs.c.task_id == "t-old")
            .values(runner="9f3c", lease_until=datetime.now(UTC) + timedelta(seconds=60))
        )
    await here.takeover.tick()
    assert await runner_of(engine, "t-old") == "9f3c"
    async with engine.begin() as conn:
        await conn.execute(
            update(gateway_runs)
            .where(gateway_runs.c.task_id == "t-old")
            .values(lease_until=datetime.now(UTC) - timedelta(seconds=1))
        )
    await here.takeover.tick()
    assert await runner_of(engine, "t-old") == "here"
    # Taken, it carries a lease the older gateways never see pass: none of
    # them claims it from this one.
    async with engine.connect() as conn:
        lease = await conn.scalar(
            select(gateway_runs.c.lease_until).where(gateway_runs.c.task_id == "t-old")
        )
    assert lease is not None and lease.replace(tzinfo=UTC) >= NO_LEASE
    upstream.release.set()
    await here.runner.wait("chat", "t-old")
    assert upstream.calls["t-old"] == 1


async def test_a_run_of_this_gateway_is_never_claimed_by_an_older_one(
    engine: AsyncEngine, here: Replica
) -> None:
    # An older gateway claims any row whose lease has passed: a rolling
    # upgrade's (or a rollback's) old replicas must find none among ours.
    await here.store("t-new-row")
    async with engine.connect() as conn:
        claimable = await conn.scalar(
            select(gateway_runs.c.task_id).where(
                gateway_runs.c.task_id == "t-new-row",
                gateway_runs.c.lease_until < datetime.now(UTC) + timedelta(days=3650),
            )
        )
    assert claimable is None


async def test_a_run_stored_whose_start_never_came_is_taken_back(
    engine: AsyncEngine, here: Replica, upstream: Upstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Its caller was cancelled between the commit and the start.
    await here.steady()
    made = await here.store("t-stranded")
    await here.takeover.tick()
    assert await here.state("t-stranded") == "TASK_STATE_SUBMITTED"  # still its caller's
    monkeypatch.setattr(task_runner, "_STARTING_SECONDS", 0.0)
    await here.takeover.tick()  # forgotten: an orphan from now on
    await here.takeover.tick()
    assert await here.state("t-stranded") == "TASK_STATE_FAILED"
    # The caller's start, come too late, makes no call.
    await here.runner.start(made, None, new=False)
    assert upstream.calls["t-stranded"] == 0


async def test_a_replica_whose_id_a_twin_uses_takes_back_none_of_its_own(
    engine: AsyncEngine, here: Replica
) -> None:
    await here.steady()
    await here.store("t-twin")
    async with engine.begin() as conn:  # the twin renews the row from its address
        await conn.execute(
            update(gateway_replicas)
            .where(gateway_replicas.c.id == "here")
            .values(url="http://10.0.0.9:8080")
        )
    await here.directory.renew()
    assert here.directory.twin == "http://10.0.0.9:8080"
    # Its start forgotten: an orphan here -- or the twin's run, alive there.
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(task_runner, "_STARTING_SECONDS", 0.0)
        here.runner.stop_unheld(set(), set())
    await here.takeover.tick()
    assert await here.state("t-twin") == "TASK_STATE_SUBMITTED"
    await here.directory.renew()  # its own address again: alone
    assert here.directory.twin is None


async def test_a_run_that_fails_to_resume_is_not_claimed_again_at_every_look(
    engine: AsyncEngine, here: Replica, there: Replica, upstream: Upstream
) -> None:
    await here.directory.announce(engine)
    await there.store("t-broken")
    await there.store("t-fine")
    upstream.broken = True  # asking whether its skill is idempotent fails
    await here.takeover.tick()
    attempts = await attempts_by_task(engine)
    assert attempts == {"t-broken": 2, "t-fine": 2}  # each claimed once; neither stopped the other
    await here.takeover.tick()
    again = await attempts_by_task(engine)
    assert again == attempts  # not claimed (and counted) again a poll later


async def test_a_start_come_too_late_is_refused_while_the_takeover_resumes_the_run(
    engine: AsyncEngine, here: Replica, upstream: Upstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    await here.steady()
    made = await here.store("t-late")
    monkeypatch.setattr(task_runner, "_STARTING_SECONDS", 0.0)
    here.runner.stop_unheld(set(), set())  # its start forgotten
    with here.runner.claiming(("chat", "t-late")):  # the takeover resumes it meanwhile
        await here.runner.start(made, None, new=False)  # the caller, at last
    assert upstream.calls["t-late"] == 0
    assert not here.runner.here(("chat", "t-late"))


async def test_a_run_taken_over_meanwhile_is_not_sent_by_the_replica_it_was_taken_from(
    engine: AsyncEngine, here: Replica, upstream: Upstream
) -> None:
    made = await here.store("t-passed")
    # Another replica judged this one gone (a pause longer than the stale
    # window) and claimed the run before this one's coroutine got to send it.
    await claimed(engine, "t-passed", "there", attempts=2)
    upstream.sending = here.runner
    upstream.release.set()
    await here.runner.start(made, None, new=False)
    await here.runner.wait("chat", "t-passed")
    assert upstream.calls["t-passed"] == 0
    assert await runner_of(engine, "t-passed") == "there"
    assert await here.state("t-passed") == "TASK_STATE_SUBMITTED"  # its holder's to end


async def test_every_write_of_a_run_is_checked_against_the_claim_it_holds(
    engine: AsyncEngine, here: Replica
) -> None:
    made = await here.store("t-fenced")
    # Taken back by this same replica (its coroutine looked dead): the
    # earlier coroutine, runner id and all, holds an older claim.
    await claimed(engine, "t-fenced", "here", attempts=2)
    with pytest.raises(RunLost):
        await here.runner.sending(made, GRANT, "a2a.run")
    failed = await here.runner.ended(made, TaskState.TASK_STATE_FAILED, "interrupted")
    assert not await here.runner.finish(made, failed)
    assert await here.state("t-fenced") == "TASK_STATE_SUBMITTED"
    current = replace(made, attempt=2)  # the claim's own (`spec_of` its row)
    await here.runner.sending(current, GRANT, "a2a.run")
    async with engine.connect() as conn:
        caller = await conn.scalar(
            select(gateway_runs.c.caller).where(gateway_runs.c.task_id == "t-fenced")
        )
    assert caller is not None and caller["sent"]["token_id"] == "jti-1"
    assert await here.runner.finish(current, failed)
    assert await here.state("t-fenced") == "TASK_STATE_FAILED"


class Vendors:
    """A vendor registry that counts the calls asked of it (none registered)."""

    def __init__(self) -> None:
        self.asked = 0

    async def call_for(self, agent_id: str) -> None:
        self.asked += 1


async def test_a_vendor_runs_first_send_is_not_made_once_the_run_is_claimed_elsewhere(
    engine: AsyncEngine, here: Replica
) -> None:
    vendors = Vendors()
    execution = VendorExecution(
        lambda: cast(FrontDoorParts, SimpleNamespace(tasks=here.tasks)),
        lambda: cast(GatewayRun, SimpleNamespace(runner=runner, vendors=vendors)),
    )
    runner = TaskRunner(engine, here.tasks, lambda: execution, replicas=here.directory)
    made = spec("t-first")
    task = Task(id="t-first", context_id=made.context_id)
    task.status.state = TaskState.TASK_STATE_SUBMITTED
    # Stored by this runner, as a call to a vendor agent does (its first
    # send's mark with it).
    assert await here.tasks.record("chat", ALICE, task, with_rows=runner.stored(made))
    # Claimed by another replica (this one judged gone) before the send.
    await claimed(engine, "t-first", "there", attempts=2)
    await runner.start(made, GRANT, new=False)
    assert runner.here(("chat", "t-first"))
    await runner.wait("chat", "t-first")
    assert vendors.asked == 0  # the vendor's call was not even looked up
    assert await runner_of(engine, "t-first") == "there"
    assert await here.state("t-first") != "TASK_STATE_FAILED"  # its holder's to end

"""The coordination rules' state (`gateway.delegation.coordination`) against a
reference model written from the rules' definitions alone: for random rule
sets and random sequences of calls starting and ending, each call is refused
or allowed exactly as the model says -- on SQLite and on PostgreSQL. And two
replicas (two engines on one PostgreSQL database) racing on one entity: a
lease goes to exactly one call, a budget's units to exactly `limit` calls."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.delegation.audit_records import AuditEvent
from gateway.delegation.coordination import Coordination, CoordinationBlocked, Store
from gateway.delegation.coordination_redis import RedisStore
from gateway.delegation.coordination_sql import SqlStore
from gateway.delegation.permits import Admitted, Caller
from gateway.storage.db import create_engine
from policies.coordination import entity_keys, plan
from policies.coordination_rules import CoordinationPolicy
from tests.support.databases import fresh_database, migrate
from tests.support.services import local_redis

AGENTS = ["a", "b", "c"]
SKILLS = ["x", "y"]
ALICE = Caller("alice", "test", frozenset(), ("client",), "client")


class Audit:
    """The one piece stood in for: these tests are about the state, not the log."""

    def __init__(self) -> None:
        self.events: list[AuditEvent] = []

    async def record(self, event: AuditEvent) -> None:
        self.events.append(event)


calls_strategy = st.fixed_dictionaries(
    {"agents": st.sampled_from([["*"], ["a"], ["b"], ["c"], ["a", "b"]])},
    optional={"skills": st.sampled_from([["*"], ["x"], ["y"]])},
)


@st.composite
def rule_sets(draw: st.DrawFn) -> dict[str, Any]:
    rules: list[dict[str, Any]] = []
    for index, kind in enumerate(draw(st.lists(st.sampled_from(KINDS), min_size=1, max_size=4))):
        rule: dict[str, Any] = {"name": f"r{index}", "kind": kind, "entity": "customer"}
        if kind == "hold":
            rule |= {
                "opened_by": draw(calls_strategy),
                "closed_by": draw(calls_strategy),
                "blocks": draw(calls_strategy),
                "ttl": 86400,
            }
        elif kind == "cooldown":
            rule |= {"after": draw(calls_strategy), "blocks": draw(calls_strategy)}
            rule["duration"] = 86400
        elif kind == "exclusive":
            rule |= {"calls": draw(calls_strategy), "ttl": 86400}
        else:
            rule |= {"calls": draw(calls_strategy), "limit": draw(st.integers(1, 2)), "per": 86400}
        rules.append(rule)
    entities = [{"entity": "customer", "key": "id"}]
    return {"entities": entities, "rules": rules}


KINDS = ["hold", "cooldown", "exclusive", "budget"]
# A step: ("start", agent, skill, customer) or ("end", which started call, succeeded).
steps_strategy = st.lists(
    st.one_of(
        st.tuples(
            st.just("start"),
            st.sampled_from(AGENTS),
            st.sampled_from(SKILLS),
            st.sampled_from("PQ"),
        ),
        st.tuples(st.just("end"), st.integers(0, 20), st.booleans()),
    ),
    min_size=1,
    max_size=25,
)


def _matches(calls: dict[str, Any], agent: str, skill: str) -> bool:
    return ("*" in calls["agents"] or agent in calls["agents"]) and (
        "*" in calls.get("skills", ["*"]) or skill in calls.get("skills", ["*"])
    )


@dataclass
class Model:
    """The rules as docs/coordination.md states them, with nothing expiring."""

    rules: list[dict[str, Any]]
    holds: set[tuple[str, str]] = field(default_factory=set)
    cools: set[tuple[str, str]] = field(default_factory=set)
    leases: dict[tuple[str, str], int] = field(default_factory=dict)
    counts: dict[tuple[str, str], int] = field(default_factory=dict)

    def start(self, call: int, agent: str, skill: str, key: str) -> bool:
        for rule in self.rules:
            at = (rule["name"], key)
            kind = rule["kind"]
            if kind == "hold":
                exempt = _matches(rule["opened_by"], agent, skill) or _matches(
                    rule["closed_by"], agent, skill
                )
                if _matches(rule["blocks"], agent, skill) and not exempt and at in self.holds:
                    return False
            elif kind == "cooldown":
                if _matches(rule["blocks"], agent, skill) and at in self.cools:
                    return False
            elif kind == "exclusive":
                if _matches(rule["calls"], agent, skill) and at in self.leases:
                    return False
            elif _matches(rule["calls"], agent, skill) and self.counts.get(at, 0) >= rule["limit"]:
                return False
        for rule in self.rules:
            at = (rule["name"], key)
            kind = rule["kind"]
            if kind == "exclusive" and _matches(rule["calls"], agent, skill):
                self.leases[at] = call
            elif kind == "budget" and _matches(rule["calls"], agent, skill):
                self.counts[at] = self.counts.get(at, 0) + 1
        return True

    def end(self, call: int, agent: str, skill: str, key: str, succeeded: bool) -> None:
        """A call's outcome: its leases go back; its success closes, then
        opens, holds and starts cooldowns."""
        self.leases = {at: held for at, held in self.leases.items() if held != call}
        if not succeeded:
            return
        for rule in self.rules:
            at = (rule["name"], key)
            if rule["kind"] == "hold":
                if _matches(rule["closed_by"], agent, skill):
                    self.holds.discard(at)
                if _matches(rule["opened_by"], agent, skill):
                    self.holds.add(at)
            elif rule["kind"] == "cooldown" and _matches(rule["after"], agent, skill):
                self.cools.add((rule["name"], key))


REDIS = local_redis(2)


@pytest.fixture(
    scope="module",
    params=[
        "sqlite",
        pytest.param("postgresql", marks=pytest.mark.postgres),
        pytest.param("redis", marks=pytest.mark.redis),
    ],
)
def backend(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """Where the state lives: a database's URL, or Redis's."""
    if request.param == "redis":
        redis.Redis.from_url(REDIS).flushdb()
        yield REDIS
        return
    if request.param == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('coordination') / 'state.db'}"
        migrate(url)
        yield url
        return
    with fresh_database() as url:
        yield url


@contextlib.asynccontextmanager
async def opened(backend: str) -> AsyncIterator[Store]:
    """The store on ``backend``, as one replica holds it."""
    if backend.startswith("redis"):
        store: Store = RedisStore(backend)
        try:
            yield store
        finally:
            await store.aclose()
        return
    engine = create_engine(backend)
    try:
        store = SqlStore(engine)
        try:
            yield store
        finally:
            await store.aclose()
    finally:
        await engine.dispose()


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(rules=rule_sets(), steps=steps_strategy)
def test_the_state_agrees_with_the_reference_model(
    backend: str, rules: dict[str, Any], steps: list[tuple[Any, ...]]
) -> None:
    policy = CoordinationPolicy.model_validate(rules)
    model = Model(rules["rules"])
    run = uuid.uuid4().hex[:8]  # this example's own customers in the shared database

    async def play() -> None:
        started: list[tuple[Admitted | None, str, str, str, int]] = []
        calls = 0
        async with opened(backend) as store:
            coordination = Coordination(store, Audit())  # type: ignore[arg-type]
            for step in steps:
                if step[0] == "start":
                    _, agent, skill, customer = step
                    key = f"{run}-{customer}"
                    call = calls = calls + 1  # unique: the model keeps leases by call
                    expected = model.start(call, agent, skill, key)
                    asked = plan(
                        policy, agent, skill, entity_keys(policy, agent, skill, [{"id": key}])
                    )
                    admitted: Admitted | None = None
                    try:
                        if asked:
                            admitted = await coordination.take(asked, ALICE, agent, skill, "t")
                        allowed = True
                    except CoordinationBlocked:
                        allowed = False
                    assert allowed == expected, (step, model)
                    if allowed:
                        started.append((admitted, agent, skill, key, call))
                elif started:
                    _, index, succeeded = step
                    admitted, agent, skill, key, call = started.pop(index % len(started))
                    model.end(call, agent, skill, key, succeeded)
                    if admitted is not None:
                        await coordination.finished(admitted, succeeded)

    anyio.run(play)


RACE = CoordinationPolicy.model_validate(
    {
        "entities": [{"entity": "order", "key": "order"}],
        "rules": [
            {
                "name": "one-writer",
                "kind": "exclusive",
                "entity": "order",
                "calls": {"skills": ["amend"]},
                "ttl": 600,
            },
            {
                "name": "three-a-day",
                "kind": "budget",
                "entity": "order",
                "calls": {"skills": ["notify"]},
                "limit": 3,
                "per": 86400,
            },
        ],
    }
)


@pytest.fixture(
    params=[
        "sqlite",
        pytest.param("postgresql", marks=pytest.mark.postgres),
        pytest.param("redis", marks=pytest.mark.redis),
    ]
)
def shared(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A store two replicas share (on SQLite: two gateway processes' workers)."""
    if request.param == "redis":
        yield REDIS
        return
    if request.param == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path / 'state.db'}"
        migrate(url)
        yield url
        return
    with fresh_database() as url:
        yield url


def test_two_replicas_racing_on_one_entity_obey_each_rule_once(shared: str) -> None:
    order = uuid.uuid4().hex

    async def race(skill: str, calls: int) -> int:
        asked = plan(RACE, "orders", skill, {"order": order})
        async with opened(shared) as one, opened(shared) as two:
            replicas = [Coordination(one, Audit()), Coordination(two, Audit())]  # type: ignore[arg-type]

            async def attempt(index: int) -> bool:
                try:
                    await replicas[index % 2].take(asked, ALICE, "orders", skill, "t")
                except CoordinationBlocked:
                    return False
                return True

            with _write_locked(shared, seconds=0.2):
                # On SQLite the first calls find the file's write lock taken
                # (another process writing) and wait for it off the event loop,
                # each store on its own connection: a real race between them.
                won = await asyncio.gather(*(attempt(i) for i in range(calls)))
        return sum(won)

    assert anyio.run(race, "amend", 20) == 1
    assert anyio.run(race, "notify", 20) == 3


@contextlib.contextmanager
def _write_locked(url: str, seconds: float) -> Iterator[None]:
    """Another process holding a SQLite file's write lock for ``seconds``
    (nothing for another backend)."""
    if not url.startswith("sqlite"):
        yield
        return
    blocker = sqlite3.connect(url.split("///", 1)[1], isolation_level=None, check_same_thread=False)
    blocker.execute("BEGIN IMMEDIATE")
    timer = threading.Timer(seconds, lambda: blocker.execute("COMMIT"))
    timer.start()
    try:
        yield
    finally:
        timer.join()
        blocker.close()


def test_on_sqlite_a_call_waits_for_the_write_lock_off_the_event_loop(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'state.db'}"
    migrate(url)
    asked = plan(RACE, "orders", "notify", {"order": "o-1"})

    async def play() -> None:
        async with opened(url) as store:
            coordination = Coordination(store, Audit())  # type: ignore[arg-type]
            blocker = sqlite3.connect(tmp_path / "state.db", isolation_level=None)
            blocker.execute("BEGIN IMMEDIATE")
            call = asyncio.create_task(coordination.take(asked, ALICE, "orders", "notify", "t"))
            ticks = 0
            for _ in range(20):
                await asyncio.sleep(0.01)
                ticks += 1
            # The loop went on meanwhile; the call is still waiting for the lock.
            assert ticks == 20 and not call.done()
            assert await coordination.list("order", "o-1") == []  # read beside the writer
            blocker.execute("COMMIT")
            blocker.close()
            await asyncio.wait_for(call, 10)
            [row] = await coordination.list("order", "o-1")
            assert (row.rule, row.count) == ("three-a-day", 1)

    anyio.run(play)


def test_a_spent_lease_and_an_expired_hold_hold_nothing(backend: str) -> None:
    policy = CoordinationPolicy.model_validate(
        {
            "entities": [{"entity": "customer", "key": "id"}],
            "rules": [
                {
                    "name": "h",
                    "kind": "hold",
                    "entity": "customer",
                    "opened_by": {"agents": ["a"]},
                    "closed_by": {"agents": ["z"]},
                    "blocks": {"agents": ["b"]},
                    "ttl": 60,
                },
                {
                    "name": "x",
                    "kind": "exclusive",
                    "entity": "customer",
                    "calls": {"agents": ["c"]},
                    "ttl": 30,
                },
            ],
        }
    )
    # Near the real time: Redis expires a row at its `until` by itself.
    clock = [time.time()]
    customer = uuid.uuid4().hex

    def asked(agent: str) -> Any:
        return plan(policy, agent, None, {"customer": customer})

    async def play() -> None:
        async with opened(backend) as store:
            coordination = Coordination(store, Audit(), lambda: clock[0])  # type: ignore[arg-type]
            opener = await coordination.take(asked("a"), ALICE, "a", None, "t")
            await coordination.finished(opener, True)  # its success opens h
            with pytest.raises(CoordinationBlocked):
                await coordination.take(asked("b"), ALICE, "b", None, "t")
            clock[0] += 61  # the hold's ttl has passed
            await coordination.take(asked("b"), ALICE, "b", None, "t")
            await coordination.take(asked("c"), ALICE, "c", None, "t")  # never ends
            with pytest.raises(CoordinationBlocked) as held:
                await coordination.take(asked("c"), ALICE, "c", None, "t")
            assert held.value.blocked.retry_after == 30
            clock[0] += 31  # the lease's ttl has passed: the stuck call holds nothing
            await coordination.take(asked("c"), ALICE, "c", None, "t")
            assert [row.rule for row in await coordination.list("customer", customer)] == ["x"]
            # The spent hold's row: gone from a database by a purge, from Redis
            # by itself (a minute from now).
            assert await coordination.purge() == (0 if backend == REDIS else 1)

    anyio.run(play)


class _DownStore(SqlStore):
    """A store that stopped answering once the call was made."""

    async def give_back(
        self, admitted: Admitted, succeeded: bool, now: float
    ) -> tuple[list[Any], list[Any]]:
        raise ConnectionError("the store is gone")


def test_a_store_lost_after_the_call_is_logged_not_raised(
    backend: str, caplog: pytest.LogCaptureFixture
) -> None:
    if backend == REDIS:
        pytest.skip("the stand-in store is SQL")
    policy = CoordinationPolicy.model_validate(
        {
            "entities": [{"entity": "customer", "key": "id"}],
            "rules": [
                {
                    "name": "after",
                    "kind": "cooldown",
                    "entity": "customer",
                    "after": {"agents": ["a"]},
                    "blocks": {"agents": ["b"]},
                    "duration": 60,
                },
            ],
        }
    )

    async def play() -> None:
        engine = create_engine(backend)
        try:
            coordination = Coordination(_DownStore(engine), Audit())  # type: ignore[arg-type]
            asked = plan(policy, "a", None, {"customer": uuid.uuid4().hex})
            admitted = await coordination.take(asked, ALICE, "a", None, "t")
            await coordination.finished(admitted, True)  # does not raise
        finally:
            await engine.dispose()

    anyio.run(play)
    assert "cooldowns not started: after" in caplog.text

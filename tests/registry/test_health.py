"""Health checks: the hysteresis rule, and the checker against a real store and card host."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from google.protobuf.json_format import MessageToDict
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.storage import db
from registry import health_history
from registry.cards import parse_card
from registry.fetch import SafeFetcher
from registry.health import HealthChecker, HealthState, next_state
from registry.models import HealthStatus
from registry.signatures import SignatureCheck, SignatureStatus
from registry.ssrf import AddressPolicy
from registry.store import HealthTarget, NewAgent, SqlAgentStore
from registry.tables import agents
from registry.tls import client_tls
from tests.support.agents import CardHost, sdk_card
from tests.support.gateway import start_gateway
from tests.support.servers import ServerThread
from tests.support.waiting import wait_for

U, H, X = HealthStatus.UNKNOWN, HealthStatus.HEALTHY, HealthStatus.UNHEALTHY


def _run(results: list[bool], start: HealthStatus = U) -> list[HealthStatus]:
    state = HealthState(start, 0, 0)
    seen = []
    for ok in results:
        state = next_state(state, ok, failure_threshold=3, success_threshold=2)
        seen.append(state.status)
    return seen


def test_hysteresis_needs_consecutive_failures_and_successes() -> None:
    assert _run([True]) == [H]  # first good answer of a new agent
    assert _run([False, False, False]) == [U, U, X]
    assert _run([True, False, False, True, False, False, False]) == [H, H, H, H, H, H, X]
    # Back to healthy only after two good checks in a row.
    assert _run([True, False, True, True], start=X) == [X, X, X, H]


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    made = db.create_engine(f"sqlite+aiosqlite:///{tmp_path / 'h.db'}")
    await db.upgrade(made)
    yield made
    await made.dispose()


@pytest.fixture
def store(engine: AsyncEngine) -> SqlAgentStore:
    return SqlAgentStore(engine)


@pytest.fixture
async def fetcher() -> AsyncIterator[SafeFetcher]:
    fetcher = SafeFetcher(AddressPolicy(allow_loopback=True))
    yield fetcher
    await fetcher.aclose()


async def _add(store: SqlAgentStore, card_url: str, base: str) -> HealthTarget:
    parsed = parse_card(MessageToDict(sdk_card(base)))
    unsigned = SignatureCheck(SignatureStatus.UNSIGNED, "")
    await store.create(NewAgent("inv", base + "/a2a", card_url, parsed, unsigned, None))
    (target,) = await store.health_targets()
    return target


async def test_checker_flips_only_after_the_threshold(
    store: SqlAgentStore,
    fetcher: SafeFetcher,
    card_host: tuple[CardHost, ServerThread],
    caplog: pytest.LogCaptureFixture,
) -> None:
    host, server = card_host
    host.documents["/card"] = (200, MessageToDict(sdk_card(server.url)))
    target = await _add(store, server.url + "/card", server.url)
    checker = HealthChecker(
        store, fetcher, interval_seconds=60, failure_threshold=2, success_threshold=2, concurrency=4
    )
    with caplog.at_level(logging.INFO):
        assert await checker.check(target) is H
    # An agent's first good answer is news, not a security warning.
    first = [r for r in caplog.records if "unknown -> healthy" in r.getMessage()]
    assert [(r.name, r.levelname) for r in first] == [("registry.health", "INFO")]
    host.documents["/card"] = (503, {"error": "down"})
    assert await checker.check(target) is H  # one failure is not enough
    record = await store.get("inv")
    assert record is not None
    assert record.health.consecutive_failures == 1
    assert "503" in (record.health.detail or "")
    assert await checker.check(target) is X
    host.documents["/card"] = (200, {"name": "no longer a valid card"})
    assert await checker.check(target) is X  # an invalid card is not healthy
    host.documents["/card"] = (200, MessageToDict(sdk_card(server.url)))
    assert await checker.check(target) is X
    assert await checker.check(target) is H
    # The history keeps each change of status, not each check: newest first.
    history = await store.health_history("inv")
    assert [(e.status, e.previous) for e in history] == [(H, X), (X, H), (H, U)]
    assert "503" in (history[1].detail or "")


async def test_a_round_checks_only_agents_not_checked_within_the_interval(
    store: SqlAgentStore,
    engine: AsyncEngine,
    fetcher: SafeFetcher,
    card_host: tuple[CardHost, ServerThread],
) -> None:
    """A restart (or another replica) does not probe every agent again at
    once: an agent checked less than an interval ago waits its turn."""
    host, server = card_host
    host.documents["/card"] = (200, MessageToDict(sdk_card(server.url)))
    await _add(store, server.url + "/card", server.url)
    checker = HealthChecker(
        store, fetcher, interval_seconds=60, failure_threshold=2, success_threshold=2, concurrency=4
    )
    await checker.check_all()  # never checked: due
    assert host.hits["/card"] == 1
    restarted = HealthChecker(
        store, fetcher, interval_seconds=60, failure_threshold=2, success_threshold=2, concurrency=4
    )
    await restarted.check_all()  # checked a moment ago: not due
    assert host.hits["/card"] == 1
    # Its check moved an interval back, not waited for (the store reads the
    # wall clock): due again.
    async with engine.begin() as conn:
        await conn.execute(
            update(agents).values(health_checked_at=datetime.now(UTC) - timedelta(seconds=60))
        )
    await restarted.check_all()
    assert host.hits["/card"] == 2


async def test_health_history_keeps_the_newest_and_goes_with_the_agent(
    store: SqlAgentStore,
    card_host: tuple[CardHost, ServerThread],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(health_history, "MAX_HEALTH_EVENTS", 3)
    _, server = card_host
    await _add(store, server.url + "/card", server.url)
    for i in range(6):
        await store.record_health("inv", H if i % 2 == 0 else X, 0, 0, f"check {i}")
    await store.record_health("inv", X, 1, 0, "the same status again: no change")
    kept = await store.health_history("inv")
    assert [e.detail for e in kept] == ["check 5", "check 4", "check 3"]
    assert await store.delete("inv")
    assert await store.health_history("inv") == []


async def test_inline_agents_are_probed_on_their_interface(
    store: SqlAgentStore, fetcher: SafeFetcher, card_host: tuple[CardHost, ServerThread]
) -> None:
    _, server = card_host
    parsed = parse_card(MessageToDict(sdk_card(server.url)))
    await store.create(
        NewAgent(
            "inline",
            "urn:test:inline",
            None,
            parsed,
            SignatureCheck(SignatureStatus.UNSIGNED, ""),
            None,
        )
    )
    (target,) = await store.health_targets()
    assert target.interface_url == server.url + "/"
    checker = HealthChecker(
        store, fetcher, interval_seconds=60, failure_threshold=1, success_threshold=1, concurrency=1
    )
    assert await checker.check(target) is H  # 404 at "/" still proves the agent answers HTTP
    closed = HealthTarget("inline", None, "http://127.0.0.1:9/")
    assert await checker.check(closed) is X


async def test_one_agent_is_never_checked_twice_at_once(
    store: SqlAgentStore, fetcher: SafeFetcher, card_host: tuple[CardHost, ServerThread]
) -> None:
    host, server = card_host
    host.documents["/card"] = (200, MessageToDict(sdk_card(server.url)))
    target = await _add(store, server.url + "/card", server.url)
    assert await store.claim_health_check("inv", timedelta(seconds=60)) is True
    assert await store.claim_health_check("inv", timedelta(seconds=60)) is False
    checker = HealthChecker(
        store, fetcher, interval_seconds=60, failure_threshold=1, success_threshold=1, concurrency=8
    )
    assert await checker.check(target) is None  # the lease is held: skipped
    await store.record_health("inv", U, 0, 0, None)  # releases the lease
    host.delay = 0.3  # long enough that the other checks start while one probes
    results = await asyncio.gather(*(checker.check(target) for _ in range(5)))
    assert host.max_in_flight == 1  # never two probes of one agent at once
    assert results.count(None) >= 3
    assert H in results


def test_background_checker_runs_in_the_gateway(tmp_path: Path, sdk_agent: ServerThread) -> None:
    gateway = start_gateway(tmp_path / "data", None, health_check_interval_seconds=0.2)
    try:
        with gateway.client() as client:
            agent_id = client.post("/agents", json={"card_url": sdk_agent.url}).json()["id"]
            wait_for(
                lambda: client.get(f"/agents/{agent_id}").json()["health"]["status"] == "healthy",
                seconds=20,
                every=0.1,
                what=lambda: client.get(f"/agents/{agent_id}").json()["health"],
            )
            assert client.get(f"/agents/{agent_id}").json()["health"]["checked_at"]
            history = client.get(f"/agents/{agent_id}/health")
            assert history.status_code == 200, history.text
            assert [e["status"] for e in history.json()] == ["healthy"]
            assert client.get("/agents/nobody/health").status_code == 404
            # A limit out of range or not a number: 422 naming it, history kept.
            for limit in ("0", "201", "-1", "ten", "1e3"):
                bad = client.get(f"/agents/{agent_id}/health", params={"limit": limit})
                assert bad.status_code == 422, (limit, bad.text)
                assert "limit" in bad.text, bad.text
            one = client.get(f"/agents/{agent_id}/health", params={"limit": "1"})
            assert [e["status"] for e in one.json()] == ["healthy"]
    finally:
        gateway.stop()
    assert (
        httpx.get(sdk_agent.url + "/.well-known/agent-card.json", verify=client_tls()).status_code
        == 200
    )


async def test_a_check_paused_past_its_lease_writes_nothing(
    database_url: str | None, tmp_path: Path
) -> None:
    # Two checks of one agent: the first paused past its lease, the second
    # claims the agent meanwhile. The first's outcome, written under the
    # claim it held (its expiry, the claim's token), changes nothing.
    url = database_url or f"sqlite+aiosqlite:///{tmp_path / 'fence.db'}"
    async with db.migrated(url, None) as made:
        store = SqlAgentStore(made)
        await _add(store, "http://127.0.0.1:9/card", "http://127.0.0.1:9")
        stale = await store.claim_health_state("inv", timedelta(seconds=-1))
        fresh = await store.claim_health_state("inv", timedelta(seconds=60))
        assert stale is not None and fresh is not None
        assert not await store.record_health("inv", X, 1, 0, "stale", U, claimed=stale.until)
        assert await store.health_state("inv") == (U, 0, 0)
        assert await store.record_health("inv", H, 0, 1, None, U, claimed=fresh.until)
        assert not await store.record_health("inv", X, 1, 0, "stale", U, claimed=stale.until)
        assert await store.health_state("inv") == (H, 0, 1)

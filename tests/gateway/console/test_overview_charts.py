"""The overview's last hour, on SQLite and PostgreSQL.

Over real HTTP: calls made through the gateway to a real a2a-sdk agent, one
of them refused by the policy, are the figures an admin's charts show (and
the audit log holds); a user who is no admin gets no traffic, only their
own runs' counts. Underneath, `audit_traffic.last_hour` on records the test
writes: per-minute calls, refusals and nearest-rank p95 (the same on both
databases), what is not a call or not in the hour left out, SQLite's
sample past its bound; `run_counts` for an admin and for one owner; the
charts' bars."""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.console.charts import HEIGHT, bars, traffic_charts
from gateway.console.overview import run_counts
from gateway.delegation import audit_traffic
from gateway.delegation.audit import AuditLog
from gateway.delegation.audit_records import AuditEvent
from gateway.delegation.audit_traffic import last_hour
from gateway.storage.flow_tables import flow_runs
from policies.scopes import ADMIN_SCOPE
from policies.tokens import Principal
from registry.tls import client_tls
from tests.support.agents import CardSource, sdk_agent_app, sdk_card
from tests.support.console import browser, dev_login
from tests.support.gateway import Gateway, start_gateway
from tests.support.inspecting import send_message_body
from tests.support.servers import ServerThread, stop_all

# Calling `stock` takes crm:read: a user without it is refused by the policy.
POLICY = """\
agents:
  stock:
    require: [crm:read]
"""


@dataclass
class Deployment:
    gateway: Gateway
    agent: ServerThread


@pytest.fixture
def deployment(tmp_path: Path, database_url: str | None) -> Iterator[Deployment]:
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY)
    agent = ServerThread(lambda url: sdk_agent_app(CardSource(sdk_card(url)))).start()
    gateway = start_gateway(tmp_path / "data", database_url, policy_file=policy)
    try:
        with gateway.client(gateway.token("root", ADMIN_SCOPE)) as admin:
            body = {"card_url": agent.url + "/.well-known/agent-card.json", "id": "stock"}
            assert admin.post("/agents", json=body).status_code == 201
        yield Deployment(gateway, agent)
    finally:
        stop_all(gateway.server, agent)


def ask(gateway: Gateway, token: str, text: str) -> httpx.Response:
    """SendMessage to `stock` through the gateway's A2A door."""
    return httpx.post(
        f"{gateway.url}/a2a/stock",
        json=send_message_body(text),
        headers={"Authorization": f"Bearer {token}", "A2A-Version": "1.0"},
        timeout=30,
        verify=client_tls(),
    )


def figures(html: str, chart: str) -> dict[str, str]:
    """The figures printed under one chart of the overview."""
    found = re.search(rf'<figure class="chart chart-{chart}".*?</figure>', html, re.S)
    assert found is not None, html[:3000]
    return dict(re.findall(r"<dt>([^<]+)</dt><dd>([^<]+)</dd>", found.group(0)))


def test_an_admin_sees_the_calls_and_refusals_made(deployment: Deployment) -> None:
    gateway = deployment.gateway
    alice, bob = gateway.token("alice", "crm:read"), gateway.token("bob")
    for n in range(3):
        made = ask(gateway, alice, f"stock {n}")
        assert made.status_code == 200 and f"echo: stock {n}" in made.text, made.text
    refused = ask(gateway, bob, "stock?")
    assert refused.status_code == 403 and "requires crm:read" in refused.json()["error"]["message"]

    with gateway.client(gateway.token("root", ADMIN_SCOPE)) as admin:
        records = admin.get("/audit", params={"agent": "stock"}).json()["items"]
    calls = [r for r in records if audit_traffic.is_call(r["event"])]
    assert len(calls) == 4 and sum(r["decision"] == "deny" for r in calls) == 1

    with browser(gateway) as ann, browser(gateway) as bob_ui:
        dev_login(ann, "ann", ADMIN_SCOPE)
        html = ann.get("/ui").text
        assert figures(html, "calls")["in the hour"] == "4"
        assert figures(html, "refusals")["in the hour"] == "1"
        assert figures(html, "latency")["latest"].endswith(" ms")
        assert 'aria-label="Calls per minute, the last 60 minutes: 4 in all' in html
        assert 'aria-label="Refusals per minute, the last 60 minutes: 1 in all' in html
        assert "style=" not in html and "<script" not in html  # the CSP allows neither
        assert re.search(r'id="holds" href="/ui/holds"><strong>0</strong>', html)

        dev_login(bob_ui, "bob", "crm:read")
        theirs = bob_ui.get("/ui").text
        assert "Traffic" not in theirs and "<svg" not in theirs
        assert "chart-calls" not in theirs and 'id="holds"' not in theirs
        assert re.search(r'id="runs-active" href="/ui/runs"><strong>0</strong>', theirs)
        assert "flow runs going (yours)" in theirs


# Underneath: the aggregation, on records the test writes -------------------------------


NOW = datetime(2026, 11, 25, 12, 0, 30, tzinfo=UTC)  # the hour: 11:01:00 to 12:01:00


def call(at: datetime, latency: float, *, deny: bool = False, event: str = "a2a") -> AuditEvent:
    return AuditEvent(
        event=event,
        trace_id="0" * 32,
        subject="alice",
        subject_issuer="idp",
        decision="deny" if deny else "allow",
        outcome="denied" if deny else "ok",
        target="stock",
        latency_ms=latency,
        at=at,
    )


async def write(engine: AsyncEngine, events: list[AuditEvent]) -> None:
    log = AuditLog(engine)
    for event in events:
        await log.record(event)
    await log.flush()


def nearest_rank(values: list[float]) -> float:
    return sorted(values)[math.ceil(0.95 * len(values)) - 1]


async def test_minutes_of_calls_refusals_and_p95(engine: AsyncEngine) -> None:
    noon = NOW.replace(second=0)
    busy = [float(n) for n in range(1, 41)]  # 40 calls at 12:00, 38 allowed
    events = [call(noon + timedelta(seconds=n % 30), ms) for n, ms in enumerate(busy)]
    events[0] = call(noon, 500.0, deny=True)  # a refusal's latency is not the p95's
    events[1] = call(noon, 400.0, deny=True)
    early = NOW - timedelta(minutes=59, seconds=30)  # 11:01:00, the hour's first minute
    events += [call(early, 7.0), call(early + timedelta(seconds=59), 3.0, event="mcp")]
    events += [call(noon - timedelta(minutes=30), 1.0, deny=True, event="flow.step")]
    # Not calls, or not in the hour: none of them counts.
    events += [call(noon, 2.0, event="a2a.GetTask")]  # an operation: a call
    events += [
        call(noon, 9_999.0, event="token_exchange"),
        call(noon, 9_999.0, event="agent.registered"),
        call(noon, 9_999.0, event="a2a.run"),
        call(noon, 9_999.0, event="a2a.approved"),
        call(early - timedelta(seconds=1), 9_999.0),
        call(noon + timedelta(minutes=1), 9_999.0),
    ]
    await write(engine, events)

    traffic = await last_hour(engine, NOW)
    assert len(traffic.minutes) == 60 and traffic.sampled_every == 1
    assert traffic.minutes[0].start == early and traffic.minutes[-1].start == noon
    assert (traffic.calls, traffic.refusals) == (44, 3)
    last, first, middle = traffic.minutes[-1], traffic.minutes[0], traffic.minutes[29]
    made = [*busy[2:], 2.0]
    assert (last.calls, last.refusals, last.p95_ms) == (41, 2, nearest_rank(made))
    assert (first.calls, first.refusals, first.p95_ms) == (2, 0, 7.0)
    assert (middle.start, middle.calls, middle.refusals, middle.p95_ms) == (
        noon - timedelta(minutes=30),
        1,
        1,
        None,  # nothing allowed that minute
    )
    assert sum(m.calls for m in traffic.minutes[1:29] + traffic.minutes[30:59]) == 0
    assert traffic.last_p95_ms == nearest_rank(made)


async def test_an_empty_hour(engine: AsyncEngine) -> None:
    traffic = await last_hour(engine, NOW)
    assert (traffic.calls, traffic.refusals, traffic.last_p95_ms) == (0, 0, None)
    charts = traffic_charts(traffic)
    assert [c.bars for c in charts] == [(), (), ()]
    assert "no call made" in charts[2].label


async def test_sqlite_ranks_a_sample_past_its_bound(
    engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(audit_traffic, "P95_SAMPLE", 10)
    noon = NOW.replace(second=0)
    await write(engine, [call(noon, float(ms)) for ms in range(1, 41)])  # ids 1..40
    traffic = await last_hour(engine, NOW)
    assert traffic.calls == 40  # counts are never sampled
    if engine.dialect.name == "sqlite":
        assert traffic.sampled_every == 4  # ceil(40 / 10): ids 4, 8, ..., 40 ranked
        assert traffic.minutes[-1].p95_ms == nearest_rank([float(i) for i in range(4, 41, 4)])
    else:  # PostgreSQL's own percentile, over every call
        assert traffic.sampled_every == 1
        assert traffic.minutes[-1].p95_ms == nearest_rank([float(i) for i in range(1, 41)])


async def test_runs_going_and_failed_for_an_admin_and_for_their_owner(
    engine: AsyncEngine,
) -> None:
    now = datetime.now(UTC)
    rows = [
        ("r1", "working", "alice", None),
        ("r2", "input_required", "bob", None),
        ("r3", "failed", "alice", now - timedelta(minutes=5)),
        ("r4", "failed", "bob", now - timedelta(minutes=10)),
        ("r5", "failed", "alice", now - timedelta(hours=2)),  # not in the last hour
        ("r6", "completed", "alice", now - timedelta(minutes=1)),
    ]
    async with engine.begin() as conn:
        await conn.execute(
            insert(flow_runs),
            [
                {
                    "id": run,
                    "flow_id": "f",
                    "flow_version": 1,
                    "state": state,
                    "owner_subject": owner,
                    "owner_issuer": "idp",
                    "grant_id": "g",
                    "input": {},
                    "trace_id": "0" * 32,
                    "context_id": run,
                    "created_at": now - timedelta(hours=3),
                    "updated_at": now,
                    "finished_at": finished,
                }
                for run, state, owner, finished in rows
            ],
        )
    assert await run_counts(engine, None) == (2, 2)
    assert await run_counts(engine, Principal("alice", "idp", frozenset())) == (1, 1)
    assert await run_counts(engine, Principal("alice", "other-idp", frozenset())) == (0, 0)


def test_bars_scale_to_the_highest_and_skip_the_empty() -> None:
    drawn = bars([0, 5, None, 10], ["a", "b", "c", "d"])
    assert [b.title for b in drawn] == ["b", "d"]
    assert drawn[1].height == HEIGHT and drawn[1].y == 0
    assert drawn[0].height == HEIGHT / 2 and drawn[0].y == HEIGHT / 2
    assert drawn[0].x < drawn[1].x and all(b.width > 0 for b in drawn)

"""The audit export to a SIEM, end to end: a real gateway on both databases
exporting to a signed webhook and to an OTLP/HTTP logs receiver, both real
HTTP servers on 127.0.0.1 (`tests.support.siem_receivers`).

What must hold: every audit record reaches both, with the fields `GET /audit`
gives; the webhook killed mid-stream and started again on its port loses
nothing, and what it gets twice carries the same id and the same fields,
each writer's records first arriving in order; a receiver that refuses for
good turns the records into dead letters (shown, and replayed once it takes
them again); only admins read or replay; nothing is dropped without a record.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.demo.ports import PortReservation
from tests.support.gateway import Gateway, start_gateway
from tests.support.servers import ServerThread, bound_socket
from tests.support.siem_receivers import SECRET, Taken, otlp_app, webhook_app
from tests.support.waiting import wait_for


@dataclass
class Setup:
    gateway: Gateway
    hook: Taken
    otlp: Taken
    hook_port: PortReservation
    hook_server: ServerThread | None
    otlp_server: ServerThread

    def admin(self) -> httpx.Client:
        return self.gateway.client()

    def start_hook(self) -> None:
        sock = bound_socket(port=self.hook_port.port)
        self.hook_server = ServerThread(lambda _url: webhook_app(self.hook), sock=sock).start()

    def stop_hook(self) -> None:
        assert self.hook_server is not None
        self.hook_server.stop()
        self.hook_server = None

    def audit_ids(self) -> set[int]:
        with self.admin() as admin:
            page = admin.get("/audit", params={"kind": "all", "after_id": 0, "limit": 1000})
            assert page.status_code == 200, page.text
            return {r["id"] for r in page.json()["items"]}

    def act(self, times: int) -> None:
        """Audited admin actions: a virtual server's creation and removal."""
        with self.admin() as admin:
            for n in range(times):
                body = {"name": f"s{n}", "title": "S", "select": {"tools": ["x__*"]}}
                assert admin.post("/mcp-sets", json=body).status_code == 201
                assert admin.delete(f"/mcp-sets/s{n}").status_code == 204

    def state(self) -> dict[str, Any]:
        with self.admin() as admin:
            answer = admin.get("/audit/export")
            assert answer.status_code == 200, answer.text
            return answer.json()  # type: ignore[no-any-return]


@pytest.fixture
def setup(tmp_path: Path, database_url: str | None) -> Iterator[Setup]:
    hook, otlp = Taken(), Taken()
    reservation = PortReservation()
    otlp_server = ServerThread(lambda _url: otlp_app(otlp)).start()
    running = Setup(
        gateway=None,  # type: ignore[arg-type]
        hook=hook,
        otlp=otlp,
        hook_port=reservation,
        hook_server=None,
        otlp_server=otlp_server,
    )
    running.start_hook()
    running.gateway = start_gateway(
        tmp_path / "data",
        database_url,
        audit_export_webhook_url=f"http://127.0.0.1:{reservation.port}/hook",
        audit_export_webhook_secret=SECRET,
        audit_export_otlp_endpoint=otlp_server.url + "/v1/logs",
        audit_export_interval_seconds=0.1,
        audit_export_batch_size=7,
        audit_export_max_delay_seconds=0.5,
    )
    try:
        yield running
    finally:
        running.gateway.server.stop()
        if running.hook_server is not None:
            running.hook_server.stop()
        otlp_server.stop()
        reservation.release()


def test_every_record_reaches_both_and_a_restarted_webhook_loses_none(setup: Setup) -> None:
    setup.act(10)
    written = setup.audit_ids()
    assert len(written) >= 20
    wait_for(
        lambda: written <= setup.hook.ids() and written <= setup.otlp.ids(),
        what="delivery",
        seconds=60,
    )
    assert setup.hook.bad_signatures == 0

    # The webhook goes away mid-stream; records go on being written.
    setup.stop_hook()
    setup.act(10)
    wait_for(
        lambda: any(s["failures"] > 0 for s in setup.state()["streams"] if s["sink"] == "webhook"),
        what="the webhook stream to fail",
        seconds=60,
    )
    failing = [s for s in setup.state()["streams"] if s["sink"] == "webhook" and s["failures"]]
    assert failing[0]["last_error"] and failing[0]["pending"] > 0
    setup.start_hook()
    written = setup.audit_ids()
    wait_for(
        lambda: written <= setup.hook.ids() and written <= setup.otlp.ids(),
        what="catching up",
        seconds=60,
    )

    # Nothing lost; a record sent twice is the same record.
    with setup.admin() as admin:
        by_id = {
            r["id"]: r
            for r in admin.get("/audit", params={"kind": "all", "limit": 1000}).json()["items"]
        }
    for record_id, fields in setup.hook.records:
        assert fields == by_id[record_id]
    firsts = list(dict.fromkeys(setup.hook.in_order()))
    assert firsts == sorted(firsts)  # one writer here: its records in order
    otlp = dict(setup.otlp.records)
    some = next(iter(written))
    assert otlp[some]["switchboard.audit.event"] == by_id[some]["event"]
    assert otlp[some]["trace_id"] == by_id[some]["trace_id"]
    assert otlp[some]["severity"] == "INFO"
    state = setup.state()
    assert state["sinks"] == ["otlp", "webhook"] and state["dead_letters"] == 0
    with setup.admin() as admin:
        metrics = admin.get("/metrics").text
    delivered = 'switchboard_audit_export_records_total{outcome="delivered",sink="webhook"}'
    assert delivered in metrics
    wait_for(
        lambda: all(s["pending"] == 0 and not s["failures"] for s in setup.state()["streams"]),
        what="both streams drained",
        seconds=60,
    )


def test_refused_records_become_dead_letters_and_are_replayed(setup: Setup) -> None:
    setup.act(1)
    first = setup.audit_ids()
    wait_for(lambda: first <= setup.hook.ids(), what="delivery", seconds=60)
    setup.hook.refusing = 400  # refused for good: no point sending again
    setup.act(3)
    refused = setup.audit_ids() - first
    wait_for(lambda: setup.state()["dead_letters"] >= len(refused), what="dead letters", seconds=60)
    with setup.admin() as admin:
        letters = admin.get("/audit/export/dead-letters", params={"sink": "webhook"}).json()
        assert {letter["audit_id"] for letter in letters} >= refused
        assert all("HTTP 400" in letter["error"] for letter in letters)
        # The stream went on: the OTLP receiver has every record meanwhile.
        wait_for(lambda: refused <= setup.otlp.ids(), what="the other sink", seconds=60)
        setup.hook.refusing = None
        replayed = admin.post("/audit/export/dead-letters/replay", json={"sink": "webhook"})
        assert replayed.status_code == 200, replayed.text
        assert replayed.json()["replayed"] >= len(refused) and replayed.json()["failed"] is None
    assert refused <= setup.hook.ids()
    assert setup.state()["dead_letters"] == 0


def test_only_admins_read_or_replay_and_bad_requests_are_refused(setup: Setup) -> None:
    user = setup.gateway.token("bob")
    with setup.gateway.client(user, admin=False) as bob:
        assert bob.get("/audit/export").status_code == 403
        assert bob.get("/audit/export/dead-letters").status_code == 403
        refused = bob.post("/audit/export/dead-letters/replay", json={"sink": "webhook"})
        assert refused.status_code == 403
    with setup.admin() as admin:
        unknown = admin.post("/audit/export/dead-letters/replay", json={"sink": "kafka"})
        assert unknown.status_code == 404
        bodies: list[Any] = [{}, {"sink": 3}, {"sink": "webhook", "limit": 0}, []]
        for body in bodies:
            assert admin.post("/audit/export/dead-letters/replay", json=body).status_code == 422
        assert admin.get("/audit/export/dead-letters", params={"limit": 0}).status_code == 422

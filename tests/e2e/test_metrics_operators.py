"""What operators watch (issue 32.11), over real HTTP: HTTP requests by route
template and status, `/mcp` by method, token exchanges, flow runs and their
steps, holds and deferrals; and the Grafana dashboard under deploy/ names
only series the gateway exports."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from gateway.delegation.audit_records import AuditEvent
from gateway.observability.metrics import GatewayMetrics
from registry.tls import client_tls
from tests.support.delegation import USER_SCOPES, Deployment, deployment
from tests.support.flows import QUOTE_FLOW, flow_setup
from tests.support.waiting import wait_for

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "deploy" / "grafana" / "switchboard.json"


def _value(text: str, name: str, **labels: str) -> float:
    """The sum of ``name``'s samples whose labels include ``labels``."""
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name and labels.items() <= sample.labels.items()
    )


@pytest.fixture
def dep(tmp_path: Path) -> Iterator[Deployment]:
    with deployment(tmp_path, metrics_refresh_seconds=0.2) as d:
        yield d


def test_http_mcp_and_token_exchanges_are_counted(dep: Deployment) -> None:
    gw = dep.gateway
    alice = gw.token("alice", USER_SCOPES)
    # alice -> support; support exchanges the token it got for one to sales (RFC 8693).
    assert dep.send("support", alice).status_code == 200
    received = dep["support"].recorder.calls()[-1].bearer
    assert received is not None
    exchanged = dep.exchange(received, by="support", resource=f"{gw.url}/a2a/sales")
    assert exchanged.status_code == 200, exchanged.text
    mcp = httpx.post(
        gw.url + "/mcp",
        json={
            "jsonrpc": "2.0",
            "id": 1,
            "method": "tools/list",
            "params": {
                "_meta": {
                    "io.modelcontextprotocol/protocolVersion": "2026-07-28",
                    "io.modelcontextprotocol/clientCapabilities": {},
                }
            },
        },
        headers={
            "Authorization": f"Bearer {alice}",
            "Accept": "application/json, text/event-stream",
            "MCP-Protocol-Version": "2026-07-28",
            "Mcp-Method": "tools/list",
        },
        timeout=30,
        verify=client_tls(),
    )
    assert mcp.status_code == 200, mcp.text
    assert httpx.get(gw.url + "/wp-admin/setup-config.php", verify=client_tls()).status_code == 404
    with gw.client() as admin:
        text = admin.get("/metrics").text
    calls = "switchboard_http_requests_total"
    assert _value(text, calls, route="/a2a/{agent_id}", method="POST", status="200") == 1
    assert _value(text, calls, route="/oauth/token", method="POST", status="200") == 1
    assert _value(text, calls, route="(unmatched)", method="GET", status="404") == 1
    assert _value(text, "switchboard_mcp_requests_total", method="tools/list") == 1
    assert _value(text, "switchboard_token_exchanges_total", target="sales", outcome="ok") == 1
    # A route template, never a raw path, an id or a subject in a label.
    assert "/a2a/support" not in text and "wp-admin" not in text and "alice" not in text


def test_flow_runs_and_steps_are_counted(tmp_path: Path) -> None:
    with flow_setup(tmp_path, None, metrics_refresh_seconds=0.2) as setup:
        assert setup.register(QUOTE_FLOW).status_code == 201
        with setup.user() as dana:
            small = {"sku": "X-100", "quantity": 10, "customer": "ACME"}
            started = dana.post("/flows/quote-flow/runs", json={"input": small})
            assert started.status_code == 202, started.text
            path = f"/flows/quote-flow/runs/{started.json()['id']}"
            wait_for(
                lambda: dana.get(path).json()["state"] == "completed",
                30,
                every=0.1,
                what="the first run completed",
            )
            big = {"sku": "X-100", "quantity": 500, "customer": "ACME"}
            assert dana.post("/flows/quote-flow/runs", json={"input": big}).status_code == 202
        with setup.admin() as admin:

            def one_waiting() -> str | None:  # once the gauges are read again
                text = admin.get("/metrics").text
                waiting = _value(text, "switchboard_flow_runs_active", state="input_required")
                return text if waiting == 1 else None

            text = wait_for(one_waiting, 30, every=0.1, what="one run waiting, in the gauges")
    runs = "switchboard_flow_runs_total"
    assert _value(text, runs, flow="quote-flow", state="started") == 2
    assert _value(text, runs, flow="quote-flow", state="completed") == 1
    # quote, stock and reply of the first run; quote and stock of the second.
    steps = "switchboard_flow_step_duration_seconds_count"
    assert _value(text, steps, state="completed") == 5


def test_holds_deferrals_and_flow_ends_come_from_the_audit_records() -> None:
    # One piece: the counters GatewayMetrics derives from each audit record.
    metrics = GatewayMetrics(None, None)  # type: ignore[arg-type]  # no refresh here

    def record(event: str, outcome: str, target: str, decision: str = "allow") -> None:
        metrics.observe(
            AuditEvent(
                event=event,
                trace_id="0" * 32,
                subject="dana",
                subject_issuer="dev",
                decision=decision,  # type: ignore[arg-type]
                outcome=outcome,
                target=target,
            )
        )

    record("a2a.SendMessage", "coordination", "sales", "deny")
    record("a2a.SendMessage", "deferred", "sales", "deny")
    record("flow.step", "deferred", "sales", "deny")
    record("flow.run", "failed", "quote-flow")
    record("token_exchange", "invalid_target", "sales", "deny")
    metrics.observe_step("failed", 1.5)
    text = metrics.render().decode()
    refusals = "switchboard_coordination_refusals_total"
    assert _value(text, refusals, target="sales", outcome="coordination") == 1
    assert _value(text, refusals, target="sales", outcome="deferred") == 2
    assert _value(text, "switchboard_flow_runs_total", flow="quote-flow", state="failed") == 1
    exchanges = "switchboard_token_exchanges_total"
    assert _value(text, exchanges, target="sales", outcome="invalid_target") == 1
    assert _value(text, "switchboard_flow_step_duration_seconds_sum", state="failed") == 1.5
    assert "dana" not in text


_SUFFIXES = {
    "counter": ("", "_total"),  # the family is named with or without it
    "histogram": ("_bucket", "_sum", "_count"),
    "gauge": ("",),
}


def test_every_dashboard_query_names_a_series_the_gateway_exports(dep: Deployment) -> None:
    with dep.gateway.client() as admin:
        text = admin.get("/metrics").text
    types = dict(re.findall(r"^# TYPE (\S+) (\S+)$", text, re.MULTILINE))
    exported = {
        family + suffix for family, kind in types.items() for suffix in _SUFFIXES.get(kind, ())
    }
    dashboard = json.loads(DASHBOARD.read_text())
    queries = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    assert len(queries) == len(dashboard["panels"]) >= 10
    named = {n for q in queries for n in re.findall(r"\bswitchboard_[a-z0-9_]+", q)}
    assert named and named <= exported, sorted(named - exported)
    # What the issue asks the dashboard to show, each in some query.
    for wanted in (
        "switchboard_flow_runs_total",
        "switchboard_flow_runs_active",
        "switchboard_flow_step_duration_seconds_bucket",
        "switchboard_coordination_refusals_total",
        "switchboard_token_exchanges_total",
        "switchboard_mcp_requests_total",
        "switchboard_http_requests_total",
    ):
        assert wanted in named, wanted
    assert len({p["id"] for p in dashboard["panels"]}) == len(dashboard["panels"])

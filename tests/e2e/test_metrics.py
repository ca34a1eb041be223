"""`/metrics`: Prometheus' text format, counted from the audit log, behind an
admin token by default (or open, or on a port of its own), over real HTTP
with the three-agent deployment."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from registry.tls import client_tls
from tests.support.delegation import USER_SCOPES, Deployment, deployment
from tests.support.waiting import wait_for


def _samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


@pytest.fixture
def dep(tmp_path: Path) -> Iterator[Deployment]:
    with deployment(tmp_path, metrics_refresh_seconds=0.2) as d:
        yield d


def test_metrics_need_an_admin_and_count_every_decision(dep: Deployment) -> None:
    gw = dep.gateway
    assert httpx.get(gw.url + "/metrics", verify=client_tls()).status_code == 401
    with gw.client(gw.token("bob", "sales:quote")) as user:
        assert user.get("/metrics").status_code == 403
    alice = gw.token("alice", USER_SCOPES)
    assert dep.send("support", alice).status_code == 200
    assert dep.send("support", alice).status_code == 200
    assert dep.send("support", gw.token("bob", "sales:quote")).status_code == 403
    with gw.client() as admin:
        response = admin.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    samples = _samples(response.text)
    allowed = frozenset(
        {
            ("event", "a2a.SendMessage"),
            ("target", "support"),
            ("action", "triage"),  # the agent's one skill
            ("decision", "allow"),
            ("outcome", "ok"),
        }
    )
    assert samples[("switchboard_calls_total", allowed)] == 2
    denied = [
        value
        for (name, labels), value in samples.items()
        if name == "switchboard_calls_total"
        and ("decision", "deny") in labels
        and ("target", "support") in labels
    ]
    assert denied == [1]
    durations = [
        value
        for (name, labels), value in samples.items()
        if name == "switchboard_call_duration_seconds_count" and ("decision", "allow") in labels
    ]
    assert sum(durations) >= 2
    # Never a subject or a token in a label.
    assert "alice" not in response.text
    assert alice not in response.text


def test_state_gauges_are_refreshed(dep: Deployment) -> None:
    gw = dep.gateway
    assert dep.send("support", gw.token("alice", USER_SCOPES)).status_code == 200
    with gw.client() as admin:
        text = ""
        for _ in range(50):
            text = admin.get("/metrics").text
            if "switchboard_db_pool_connections" in text:
                break
    samples = _samples(text)
    assert ("switchboard_approvals_pending", frozenset()) in samples
    assert any(name == "switchboard_db_pool_connections" for name, _ in samples)


def test_the_periodic_jobs_health_is_shown(dep: Deployment) -> None:
    """Every periodic job (gateway.storage.periodic) has a failing gauge, at 0
    on a healthy gateway, and those that ran a last-success time."""
    ran = {"replica", "health-checker", "gateway-runs", "a2a-reconciler", "mcp-upstreams"}

    def all_ran() -> dict[tuple[str, frozenset[tuple[str, str]]], float] | None:
        samples = _samples(admin.get("/metrics").text)
        shown = {
            dict(labels)["job"]
            for name, labels in samples
            if name == "switchboard_job_last_success_timestamp_seconds"
        }
        return samples if ran <= shown else None

    with dep.gateway.client() as admin:
        samples = wait_for(all_ran, 30, what=f"a last success of each of {sorted(ran)}")
    failing = {
        dict(labels)["job"]: value
        for (name, labels), value in samples.items()
        if name == "switchboard_job_failing"
    }
    assert {
        "policy-reloader",
        "push-pending-sweeper",
        "metrics-refresh",
        "flow-retention",
    } | ran <= (failing.keys())
    assert set(failing.values()) == {0}
    started = time.time() - 120
    assert all(
        value > started
        for (name, _), value in samples.items()
        if name == "switchboard_job_last_success_timestamp_seconds"
    )


def test_open_metrics_for_a_scraper_without_a_token(tmp_path: Path) -> None:
    with deployment(tmp_path, metrics_public=True) as dep:
        response = httpx.get(dep.gateway.url + "/metrics", verify=client_tls())
        assert response.status_code == 200
        assert "switchboard_calls" in response.text


def test_metrics_on_their_own_port(tmp_path: Path) -> None:
    port = _free_port()
    with deployment(tmp_path, metrics_port=port) as dep:
        alice = dep.gateway.token("alice", USER_SCOPES)
        assert dep.send("support", alice).status_code == 200
        own = httpx.get(f"http://127.0.0.1:{port}/metrics", verify=client_tls())
        assert own.status_code == 200
        assert 'target="support"' in own.text
        with dep.gateway.client() as admin:
            assert admin.get("/metrics").status_code == 404

"""One live gateway (real HTTP on 127.0.0.1, SQLite) with real A2A agents
built on the official SDK, and one headless Chromium, for the whole browser
suite: each test logs in afresh, so the tests stay independent but cheap."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from policies.scopes import ADMIN_SCOPE
from tests.support.a2a_agents import worker_agent
from tests.support.browser import Browser, chromium
from tests.support.console_world import World, start_world
from tests.support.gateway import Gateway, start_gateway
from tests.support.inspecting import Recorder
from tests.support.servers import ServerThread, stop_all

# Every call to `worker` waits for an admin (docs/approvals.md).
POLICY = """\
agents:
  worker:
    approval: true
"""


@dataclass
class Deployment:
    gateway: Gateway
    worker: ServerThread
    seen: Recorder

    @property
    def url(self) -> str:
        return self.gateway.url


@pytest.fixture(scope="package")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    root = tmp_path_factory.mktemp("browser")
    policy = root / "policy.yaml"
    policy.write_text(POLICY)
    seen = Recorder()
    worker = worker_agent(seen)
    # Health checked often, so an agent's page has a history to show.
    gateway = start_gateway(
        Path(root / "data"), None, policy_file=policy, health_check_interval_seconds=1
    )
    try:
        with gateway.client(gateway.token("admin", ADMIN_SCOPE)) as admin:
            body = {"card_url": worker.url + "/.well-known/agent-card.json", "id": "worker"}
            assert admin.post("/agents", json=body).status_code == 201
        yield Deployment(gateway, worker, seen)
    finally:
        # The gateway first, then the agent it calls and checks every second
        # (as `flow_setup`: a client still holding a request to a server that
        # stops meanwhile once kept a thread past its join).
        gateway.server.stop()
        worker.stop()


@pytest.fixture(scope="package")
def browser() -> Iterator[Browser]:
    driver = chromium()
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture(scope="package")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """A second gateway, for the MCP, flow and hold pages (`tests.support.console_world`)."""
    made = start_world(tmp_path_factory.mktemp("world"))
    try:
        yield made
    finally:
        stop_all(made.gateway.server, made.upstream)

"""A flow run waiting for its user to connect an account looks for itself.

The console's callback tells waiting runs that the user connected; that word
can be lost (the gateway stopped between saving the connection and telling
the run, or telling it failed). The run then finds the connection at one of
its own looks (`gateway.flows.consents`), which grow apart from
``flow_checkpoint_poll_seconds`` -- here a fifth of a second. Real vendor
(the official MCP SDK's server and authorization server), real gateway, both
databases.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from gateway.demo.vendor import Vendor
from tests.e2e.test_connected_accounts import (
    WHOAMI_FLOW,
    browser,
    connect,
    connected_gateway,
    register_notes,
    run_state,
)
from tests.support.dbos_records import operations
from tests.support.gateway import Gateway, GatewayFactory
from tests.support.waiting import wait_for

pytestmark = pytest.mark.vendor(access_seconds=30)


@pytest.fixture
def gateway(make_gateway: GatewayFactory, database_url: str | None) -> Gateway:
    return connected_gateway(make_gateway, database_url, flow_checkpoint_poll_seconds=0.2)


def _looks(gateway: Gateway, run_id: str, name: str = "consent clock ") -> int:
    """How many of the run's recorded operations are named starting with
    ``name``: by default its looks (its "consent clock" steps)."""
    url = gateway.settings.effective_database_url
    return sum(1 for _, named, _ in operations(url, run_id) if named.startswith(name))


# The looks double apart: the next comes about as long after the wait began
# as has passed since. Generous, for a loaded machine.
PATIENCE_SECONDS = 180


def _until_looks(gateway: Gateway, run_id: str, count: int, name: str = "consent clock ") -> None:
    wait_for(
        lambda: _looks(gateway, run_id, name) >= count,
        PATIENCE_SECONDS,
        what=f"run {run_id} looking {count} times",
    )


def _lose_the_word(gateway: Gateway, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Telling the runs fails, as when the database gives way at that moment;
    the console logs it and goes on. Who would have been told."""
    lost: list[str] = []

    async def fails(upstream: str, subject: str, issuer: str) -> int:
        lost.append(subject)
        raise RuntimeError("the word to the waiting runs is lost")

    flows = gateway.server.app.state.switchboard.flows
    monkeypatch.setattr(flows, "connected", fails)
    return lost


def test_a_run_whose_word_was_lost_finds_the_connection_and_goes_on(
    gateway: Gateway, vendor: Vendor, monkeypatch: pytest.MonkeyPatch
) -> None:
    register_notes(gateway, vendor)
    with gateway.client() as admin:
        registered = admin.post("/flows", json=WHOAMI_FLOW)
    assert registered.status_code == 201, registered.text
    lost = _lose_the_word(gateway, monkeypatch)
    gina = gateway.token("gina")
    with gateway.client(gina) as client:
        started = client.post("/flows/ask-notes/runs", json={"input": {}})
    assert started.status_code == 202, started.text
    run: dict[str, Any] = started.json()
    waiting = run_state(gateway, gina, run, "auth_required", "failed", "completed")
    assert waiting["state"] == "auth_required", waiting

    # Another user's connection is not hers: her run looks past it.
    with browser(gateway, "hal") as console:
        connect(gateway, vendor, console, "hal@vendor")
    seen = _looks(gateway, run["id"])
    _until_looks(gateway, run["id"], seen + 2)  # one look begun after Hal connected
    assert run_state(gateway, gina, run, "auth_required")["state"] == "auth_required"
    assert _looks(gateway, run["id"], "consented ") == 0  # not let go on, even for a try
    assert not [c for c in vendor.calls if c["subject"] == "gina@vendor"]

    with browser(gateway, "gina") as console:
        connect(gateway, vendor, console, "gina@vendor")
    assert lost == ["hal", "gina"]  # no word reached any run
    _until_looks(gateway, run["id"], 1, "consented ")
    done = run_state(gateway, gina, run, "completed", "failed")
    assert done["state"] == "completed", done
    assert json.loads(done["output"])["subject"] == "gina@vendor"
    [who] = [c for c in vendor.calls if c["subject"] == "gina@vendor"]
    assert who["tool"] == "whoami"  # sent once, after she connected

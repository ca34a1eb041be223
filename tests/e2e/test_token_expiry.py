"""One rule for "expired" on every path (issue 57): a token inside the
clock-skew leeway passed the door and then failed when it was delegated --
HTTP 500 at `/a2a`, an ERROR traceback at `/mcp` -- and a clean 401 came
only once the leeway was over. Now a token the door accepts is delegated
(the minted token ends when the door would stop accepting it), and one
past the leeway is refused at the door, in the door's protocol."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import anyio
import httpx
import pytest

from tests.support.flows import USER_SCOPES, FlowSetup, flow_setup
from tests.support.mcp_clients import mcp_client

STOCK = {"sku": "X-100", "quantity": 2}


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[FlowSetup]:
    with flow_setup(tmp_path, None) as made:
        yield made


def _expired(setup: FlowSetup, seconds_ago: float) -> str:
    """dana's token, whose `exp` was ``seconds_ago`` seconds ago."""
    return setup.gateway.mint(
        sub="dana", scopes=USER_SCOPES, ttl=1, now=time.time() - 1 - seconds_ago
    )


def _send(setup: FlowSetup, token: str) -> httpx.Response:
    message = {"messageId": str(uuid.uuid4()), "role": "ROLE_USER", "parts": [{"data": STOCK}]}
    params = {"message": message, "metadata": {"skill": "quote"}}
    body = {"jsonrpc": "2.0", "id": "q-1", "method": "SendMessage", "params": params}
    with setup.gateway.client(token) as client:
        return client.post("/a2a/sales", json=body, headers={"A2A-Version": "1.0"})


def _check_stock(setup: FlowSetup, token: str) -> object:
    async def call() -> object:
        async with mcp_client(setup.gateway.url + "/mcp", token, "2026-07-28") as client:
            return (await client.call_tool("inventory__check_stock", STOCK)).structured_content

    return anyio.run(call)


def test_inside_the_leeway_a_token_is_accepted_and_delegated_on_every_door(
    setup: FlowSetup, caplog: pytest.LogCaptureFixture
) -> None:
    assert setup.gateway.settings.token_leeway_seconds == 30
    token = _expired(setup, 5)
    sent = _send(setup, token)
    assert sent.status_code == 200, sent.text
    assert sent.json()["result"]["task"]["status"]["state"] == "TASK_STATE_COMPLETED", sent.text
    assert _check_stock(setup, token) == {"sku": "X-100", "on_hand": 1240, "enough": True}
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


def test_past_the_leeway_a_token_is_refused_at_the_door(
    setup: FlowSetup, caplog: pytest.LogCaptureFixture
) -> None:
    token = _expired(setup, 35)
    sent = _send(setup, token)
    assert sent.status_code == 401, sent.text
    assert "expired" in sent.text
    with setup.gateway.client(token) as client:
        at_mcp = client.post("/mcp", json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"})
    assert at_mcp.status_code == 401, at_mcp.text
    assert setup.desk.received == []
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]

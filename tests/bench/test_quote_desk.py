"""`bench.quote_desk` answers the ``quote`` skill as the a2a-sdk desk it
stands in for: the same JSON-RPC results, event by event, once ids and
times are set aside; an unknown method is a JSON-RPC error."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from bench.quote_desk import QuoteDesk
from gateway.demo.flow_agents import SalesDesk, sales_desk_app
from gateway.demo.servers import Server, bound_socket

_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_TIME = re.compile(r"\d{4}-\d\d-\d\dT[0-9:.]+Z")


@pytest.fixture
def desks() -> Iterator[tuple[Server, Server, QuoteDesk]]:
    sdk = Server("sdk desk", bound_socket())
    sdk.start(sales_desk_app(sdk.url, SalesDesk()))
    stub_desk = QuoteDesk()
    stub = Server("stub desk", bound_socket())
    stub.start(stub_desk.app(stub.url))
    try:
        yield sdk, stub, stub_desk
    finally:
        sdk.stop()
        stub.stop()


def _request(method: str) -> dict[str, Any]:
    message = {
        "messageId": str(uuid.uuid4()),
        "role": "ROLE_USER",
        "parts": [{"data": {"sku": "B-2", "quantity": 200}, "mediaType": "application/json"}],
        "metadata": {"skill": "quote"},
    }
    return {"jsonrpc": "2.0", "id": 7, "method": method, "params": {"message": message}}


def _results(url: str, method: str) -> list[Any]:
    answer = httpx.post(url + "/", json=_request(method), headers={"A2A-Version": "1.0"})
    answer.raise_for_status()
    if method == "SendMessage":
        documents = [answer.json()]
    else:
        assert answer.headers["content-type"].startswith("text/event-stream")
        documents = [
            json.loads(line.removeprefix("data: "))
            for line in answer.text.splitlines()
            if line.startswith("data: ")
        ]
    # Ids and times differ from call to call; their places must not.
    text = _TIME.sub("<time>", _UUID.sub("<id>", json.dumps(documents)))
    return list(json.loads(text))


@pytest.mark.parametrize("method", ["SendStreamingMessage", "SendMessage"])
def test_the_stub_answers_as_the_sdk_desk(
    desks: tuple[Server, Server, QuoteDesk], method: str
) -> None:
    sdk, stub, stub_desk = desks
    expected = _results(sdk.url, method)
    assert len(expected) == (4 if method == "SendStreamingMessage" else 1)
    assert _results(stub.url, method) == expected
    assert stub_desk.count("quote") == 1


def test_an_unknown_method_is_a_jsonrpc_error(desks: tuple[Server, Server, QuoteDesk]) -> None:
    _, stub, stub_desk = desks
    answer = httpx.post(stub.url + "/", json=_request("CancelTask"))
    assert answer.json()["error"]["code"] == -32601
    assert stub_desk.count("quote") == 0


def test_its_card_names_the_quote_skill_on_json_rpc_only(
    desks: tuple[Server, Server, QuoteDesk],
) -> None:
    _, stub, _ = desks
    card = httpx.get(stub.url + "/.well-known/agent-card.json").json()
    assert "quote" in [skill["id"] for skill in card["skills"]]
    assert [i["protocolBinding"] for i in card["supportedInterfaces"]] == ["JSONRPC"]
    assert card["capabilities"]["streaming"] is True

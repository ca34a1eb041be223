"""The gateway's verdict on a JSON-RPC answer (`gateway.agents.jsonrpc_answers`)
is the a2a-sdk client's own (`JsonRpcTransport._check_jsonrpc_response`),
answer for answer: this fails if an upgrade of the SDK changes its check."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from a2a.client.transports.jsonrpc import JsonRpcTransport
from a2a.types import AgentCard
from a2a.utils.errors import JSON_RPC_ERROR_CODE_MAP, InvalidParamsError

import gateway.agents.outages
import gateway.delegation.upstream_failures
import gateway.flows.agent
from gateway.agents.jsonrpc_answers import check_answer
from registry.tls import client_tls

_INFO = "type.googleapis.com/google.rpc.ErrorInfo"
_ANSWERS: list[Any] = [
    {"jsonrpc": "2.0", "id": 1, "result": {"ok": True}},
    {"jsonrpc": "2.0", "id": 1, "result": None},
    {"jsonrpc": "2.0", "id": 1, "error": None, "result": {}},
    *(
        {"jsonrpc": "2.0", "id": 1, "error": {"code": code, "message": "refused"}}
        for code in sorted(set(JSON_RPC_ERROR_CODE_MAP.values()))
    ),
    {"jsonrpc": "2.0", "id": 1, "error": {"code": -32001}},
    {"jsonrpc": "2.0", "id": 1, "error": {"code": -32099, "message": "unknown"}},
    {"jsonrpc": "2.0", "id": 1, "error": {"code": "x", "message": "not a number"}},
    {
        "jsonrpc": "2.0",
        "id": 1,
        "error": {
            "code": -32602,
            "message": "bad",
            "data": [{"@type": "other"}, {"@type": _INFO, "metadata": {"field": "a"}}],
        },
    },
    {"jsonrpc": "2.0", "id": 1, "error": {"code": -32602, "data": [{"@type": _INFO}]}},
    {"jsonrpc": "2.0", "id": 1, "error": "a string"},
    {"jsonrpc": "2.0", "id": 1},
    [{"jsonrpc": "2.0", "id": 1, "result": {}}],
    "an answer",
    None,
]


def _verdict(check: Callable[[Any], Any], answer: Any) -> tuple[str, Any, Any]:
    try:
        return "answer", check(answer), None
    except Exception as exc:
        return type(exc).__name__, str(exc), getattr(exc, "data", None)


# The gateway's classes are in the SDK's table, as in the gateway (its own codes too).
_OURS = (gateway.agents.outages, gateway.delegation.upstream_failures, gateway.flows.agent)


@pytest.mark.parametrize("answer", _ANSWERS)
async def test_the_verdict_is_the_sdk_clients(answer: Any) -> None:
    sdk_check = inspect.unwrap(JsonRpcTransport._check_jsonrpc_response)
    async with httpx.AsyncClient(verify=client_tls()) as http:
        transport = JsonRpcTransport(http, AgentCard(name="agent"), "http://127.0.0.1:9/a2a")
        sdks = _verdict(lambda a: sdk_check(transport, a), answer)
    assert _verdict(check_answer, answer) == sdks


def test_an_error_raises_its_class_with_its_details() -> None:
    error = {"code": -32602, "message": "bad", "data": [{"@type": _INFO, "metadata": {"f": 1}}]}
    with pytest.raises(InvalidParamsError) as raised:
        check_answer({"jsonrpc": "2.0", "id": 1, "error": error})
    assert raised.value.data == {"f": 1}

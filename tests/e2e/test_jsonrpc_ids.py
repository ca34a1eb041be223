"""JSON-RPC errors keep the request's id (JSON-RPC 2.0 §5: null only when
the id could not be read): those the A2A front door writes itself, and on
`/mcp` those the MCP SDK's transport writes for an envelope it refuses; and a
number too large for one of A2A's int32 fields is invalid params, not an
internal error."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from registry.tls import client_tls
from tests.support.delegation import USER_SCOPES, Deployment, deployment
from tests.support.inspecting import send_message_body


@pytest.fixture
def dep(tmp_path: Path) -> Iterator[Deployment]:
    with deployment(tmp_path) as made:
        yield made


def _post(dep: Deployment, path: str, token: str, body: Any) -> httpx.Response:
    return httpx.post(
        f"{dep.gateway.url}{path}",
        json=body,
        headers={"Authorization": f"Bearer {token}", "A2A-Version": "1.0"},
        timeout=30,
        verify=client_tls(),
    )


def test_a_policy_denial_keeps_the_request_id(dep: Deployment) -> None:
    body = send_message_body("hello", request_id="request-7")
    refused = _post(dep, "/a2a/support", dep.gateway.token("bob", "sales:quote"), body)
    assert refused.status_code == 403
    assert refused.json()["id"] == "request-7"
    assert refused.json()["error"]["code"] == -32000


def test_an_unknown_agent_keeps_the_request_id(dep: Deployment) -> None:
    body = send_message_body("hello", request_id="42")
    body["id"] = 42
    refused = _post(dep, "/a2a/nobody", dep.gateway.token("alice", USER_SCOPES), body)
    assert refused.status_code == 404
    assert refused.json()["id"] == 42


@pytest.mark.parametrize("field", ["historyLength", "history_length"])
def test_an_int32_field_out_of_range_is_invalid_params(dep: Deployment, field: str) -> None:
    body = {
        "jsonrpc": "2.0",
        "id": 9,
        "method": "tasks/get",
        "params": {"id": "t-1", field: 2**31},
    }
    answered = _post(dep, "/a2a/support", dep.gateway.token("alice", USER_SCOPES), body)
    assert answered.status_code == 200
    assert answered.json() == {
        "jsonrpc": "2.0",
        "id": 9,
        "error": {"code": -32602, "message": f"params.{field} must fit in 32 bits"},
    }


def test_a_body_too_deep_to_read_answers_a_null_id(dep: Deployment) -> None:
    deep = '{"jsonrpc": "2.0", "id": 1, "method": "SendMessage", "params": ' + "[" * 100_000
    answered = httpx.post(
        f"{dep.gateway.url}/a2a/support",
        content=deep + "]" * 100_000 + "}",
        headers={
            "Authorization": f"Bearer {dep.gateway.token('alice', USER_SCOPES)}",
            "Content-Type": "application/json",
        },
        timeout=30,
        verify=client_tls(),
    )
    assert answered.json()["error"]["code"] == -32700
    assert answered.json()["id"] is None


MCP_HEADERS = {
    "Content-Type": "application/json",
    "Accept": "application/json, text/event-stream",
}
REFUSED_ENVELOPES = [
    {"jsonrpc": "1.0", "id": 7, "method": "ping"},
    {"jsonrpc": "2.0", "id": "req-8", "method": "tools/call", "params": "x"},
    {"jsonrpc": "2.0", "id": 9, "method": 9},
    {"id": 10, "method": "tools/list"},
]


@pytest.mark.parametrize("revision", ["2026-07-28", "2025-11-25"])
@pytest.mark.parametrize("body", REFUSED_ENVELOPES, ids=lambda b: str(b.get("id")))
def test_an_mcp_envelope_refusal_keeps_the_request_id(
    dep: Deployment, revision: str, body: dict[str, Any]
) -> None:
    refused = httpx.post(
        f"{dep.gateway.url}/mcp",
        json=body,
        headers={
            **MCP_HEADERS,
            "Authorization": f"Bearer {dep.gateway.token('alice', USER_SCOPES)}",
            "MCP-Protocol-Version": revision,
        },
        timeout=30,
        verify=client_tls(),
    )
    assert refused.status_code == 400
    answer = refused.json()
    assert answer["id"] == body["id"], answer
    # JSON-RPC 2.0 §5.1: not a valid Request object is Invalid Request, and
    # the caller gets a sentence, not pydantic's report.
    assert answer["error"]["code"] == -32600, answer
    assert "pydantic" not in answer["error"]["message"]
    assert int(refused.headers["content-length"]) == len(refused.content)


@pytest.mark.parametrize("revision", ["2026-07-28", "2025-11-25"])
@pytest.mark.parametrize(
    "body",
    [[{"jsonrpc": "2.0", "id": 7, "method": "ping"}], {"jsonrpc": "2.0", "id": True, "method": 7}],
    ids=["batch", "bool-id"],
)
def test_an_mcp_request_whose_id_cannot_be_read_answers_null(
    dep: Deployment, revision: str, body: Any
) -> None:
    refused = httpx.post(
        f"{dep.gateway.url}/mcp",
        json=body,
        headers={
            **MCP_HEADERS,
            "Authorization": f"Bearer {dep.gateway.token('alice', USER_SCOPES)}",
            "MCP-Protocol-Version": revision,
        },
        timeout=30,
        verify=client_tls(),
    )
    assert refused.status_code == 400
    assert refused.json()["id"] is None
    assert refused.json()["error"]["code"] == -32600

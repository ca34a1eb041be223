"""Hypothesis fuzzing of the gateway's MCP endpoint (`/mcp`), both revisions
(2026-07-28 stateless, 2025-11-25 in a session), on SQLite and PostgreSQL,
through to a real MCP server (tools, a resource, a template, a prompt with
completions) and the agents' skills offered as tools.

Every method gets params bent from a valid request
(`tests.support.jsonrpc_fuzz.mutated`: wrong types, huge numbers, deep
nesting, odd Unicode, huge strings, missing fields), real tool, prompt and
resource names some of the time, odd request ids, and now and then routing
headers (`MCP-Protocol-Version`, `Mcp-Method`, `Mcp-Name`, `Mcp-Session-Id`,
`Accept`) that are missing or disagree. The answer must never be a 5xx, and
must be a well-formed JSON-RPC response to the request, JSON or an SSE
stream (or a 4xx problem document, or a bare transport refusal).
`subscriptions/listen` is left out: it is a stream meant to stay open.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import hypothesis.strategies as st
import pytest
from hypothesis import HealthCheck, given, settings
from mcp_types import CLIENT_CAPABILITIES_META_KEY, PROTOCOL_VERSION_META_KEY

from registry.tls import client_tls
from tests.support.fuzzing import Deployment, deployment, examples
from tests.support.jsonrpc_fuzz import encode, judge, mutated, never, request_id

EXAMPLES = examples(12)
MODERN, LEGACY = "2026-07-28", "2025-11-25"
ENVELOPE = {PROTOCOL_VERSION_META_KEY: MODERN, CLIENT_CAPABILITIES_META_KEY: {}}
TOOLS = ["alpha__add", "alpha__fail", "alpha__whoami", "worker__work", "legacy__work"]
URIS = ["switchboard://alpha/note://x", "switchboard://alpha/note://by-id/7", "note://x"]
PROMPTS = ["alpha__greet", "greet"]
FILLERS = {"name": TOOLS + PROMPTS, "uri": URIS}
CLIENT = {"name": "fuzzer", "version": "1.0"}

# Every method, with params it would accept.
METHODS: dict[str, Any] = {
    "initialize": {"protocolVersion": LEGACY, "capabilities": {}, "clientInfo": CLIENT},
    "ping": {},
    "server/discover": {},
    "tools/list": {"cursor": "c"},
    "tools/call": {"name": "alpha__add", "arguments": {"a": 1, "b": 2}},
    "resources/list": {"cursor": "c"},
    "resources/templates/list": {},
    "resources/read": {"uri": URIS[0]},
    "resources/subscribe": {"uri": URIS[0]},
    "resources/unsubscribe": {"uri": URIS[0]},
    "prompts/list": {},
    "prompts/get": {"name": "alpha__greet", "arguments": {"name": "al"}},
    "completion/complete": {
        "ref": {"type": "ref/prompt", "name": "alpha__greet"},
        "argument": {"name": "name", "value": "al"},
    },
    "logging/setLevel": {"level": "info"},
    "notifications/cancelled": {"requestId": 1, "reason": "fuzz"},
    "nonexistent/method": {"x": 1},
}

CURRENT: dict[str, Deployment] = {}


def upstreams_own(error: dict[str, Any]) -> bool:
    """An upstream's own -32603, relayed as it gave it: the test server
    (the SDK's MCPServer) answers a prompts/get missing a required argument
    with "Internal server error". The gateway's own errors are never -32603."""
    return error.get("message") == "Internal server error"


def header(value: Any) -> bytes:
    """``value`` as a header can carry it: UTF-8, no control characters, no
    whitespace at either end (RFC 9110 section 5.5: a field value has none;
    the HTTP client refuses to send b" ", which a drawn name of one space
    made, once in a few thousand runs)."""
    raw = str(value).encode("utf-8", "surrogatepass")
    return bytes(b for b in raw if b >= 0x20 and b != 0x7F).strip(b" \t")


@st.composite
def mcp_request(
    draw: st.DrawFn, method: str, revision: str, session: str | None
) -> tuple[dict[str, bytes], Any]:
    live = CURRENT["live"]
    template = dict(METHODS[method])
    if revision == MODERN:
        template["_meta"] = ENVELOPE
    params = draw(mutated(template, FILLERS))
    body: dict[str, Any] = {"jsonrpc": "2.0", "method": method}
    if not method.startswith("notifications/"):
        body["id"] = draw(request_id())
    if draw(st.integers(0, 9)):
        body["params"] = params
    if not draw(st.integers(0, 14)):
        body.pop(draw(st.sampled_from(list(body))))
    headers = {
        "Content-Type": b"application/json",
        "Authorization": f"Bearer {live.user_token}".encode(),
        "Accept": b"application/json, text/event-stream",
        "MCP-Protocol-Version": revision.encode(),
    }
    if revision == MODERN:
        headers["Mcp-Method"] = method.encode()
        named = params.get("name", params.get("uri")) if isinstance(params, dict) else None
        if named is not None:
            headers["Mcp-Name"] = header(named)
    elif session is not None and method != "initialize":
        headers["Mcp-Session-Id"] = session.encode()
    if not draw(st.integers(0, 5)):  # a routing header missing, or saying something else
        name = draw(st.sampled_from(sorted(headers)))
        replacement = draw(
            st.one_of(st.none(), st.sampled_from(["", "2099-01-01", MODERN, LEGACY, "tools/list"]))
        )
        if replacement is None:
            del headers[name]
        else:
            headers[name] = header(replacement)
    return headers, body


@pytest.fixture(scope="module")
def live(
    tmp_path_factory: pytest.TempPathFactory, module_database_url: str | None
) -> Iterator[Deployment]:
    with deployment(tmp_path_factory.mktemp("mcp-fuzz"), module_database_url) as made:
        CURRENT["live"] = made
        yield made
        CURRENT.pop("live", None)


@pytest.fixture
def mcp(live: Deployment) -> Iterator[httpx.Client]:
    CURRENT["live"] = live
    with httpx.Client(base_url=live.url, timeout=30, verify=client_tls()) as client:
        yield client


@pytest.fixture
def session(mcp: httpx.Client, live: Deployment) -> str:
    """A 2025-11-25 session of the fuzzing user, initialized."""
    headers = {
        "Authorization": f"Bearer {live.user_token}",
        "Accept": "application/json, text/event-stream",
    }
    opened = mcp.post(
        "/mcp",
        json={"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": METHODS["initialize"]},
        headers=headers,
    )
    assert opened.status_code == 200, opened.text
    session_id = opened.headers["mcp-session-id"]
    headers.update({"Mcp-Session-Id": session_id, "MCP-Protocol-Version": LEGACY})
    done = mcp.post(
        "/mcp", json={"jsonrpc": "2.0", "method": "notifications/initialized"}, headers=headers
    )
    assert done.status_code == 202, done.text
    return session_id


@pytest.mark.parametrize("method", list(METHODS))
@pytest.mark.parametrize("revision", [MODERN, LEGACY])
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    database=None,
)
@given(data=st.data())
def test_method(
    mcp: httpx.Client, session: str, revision: str, method: str, data: st.DataObject
) -> None:
    headers, body = data.draw(mcp_request(method, revision, session), label="request")
    raw = {name.encode(): value for name, value in headers.items()}
    response = mcp.post("/mcp", content=encode(body), headers=raw)
    tolerated = upstreams_own if method == "prompts/get" else never
    # Errors keep the request's id here too: the MCP SDK's transport answers
    # an envelope it refuses with id null, and `gateway.http.jsonrpc_ids`
    # puts a readable id back (issue 15).
    judge(response, body, f"{method} at {revision}", tolerated)

"""Resumable SSE streams on the gateway's `/mcp` (2025-11-25 sessions;
`gateway.mcp.events`): priming events with `retry`, a call whose stream drops
resumed with `Last-Event-ID`, and no replay of another user's events.

A real gateway (SQLite: nothing here touches storage) in front of a real SDK
server, the official client and raw HTTP on 127.0.0.1.
"""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import httpx
import httpx2
import mcp_types as types
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.server.streamable_http import EventCallback, EventId, StreamId

from gateway.mcp.auth import current_caller
from gateway.mcp.events import MemoryEventStore, SessionBinding, SessionScope, _current_session
from registry.tls import client_tls
from tests.e2e.test_mcp_front import text_of
from tests.support.gateway import Gateway, start_gateway
from tests.support.mcp_clients import mcp_client
from tests.support.mcp_servers import ToolBox, upstream_server
from tests.support.servers import ServerThread, stop_all

RETRY_MS = 50
LEGACY = "2025-11-25"


class Gate:
    """A tool that answers once the test opens the gate."""

    def __init__(self) -> None:
        self.started = threading.Event()
        self.open = threading.Event()

    async def wait_for_gate(self) -> str:
        self.started.set()
        opened = await anyio.to_thread.run_sync(self.open.wait, 20)
        return "through the gate" if opened else "gate stayed shut"


@dataclass
class Resume:
    gateway: Gateway
    upstream: ServerThread
    gate: Gate
    # (method, subject, session) wherever the event store was used.
    seen: list[tuple[str, str | None, SessionScope | None]] = field(default_factory=list)

    @property
    def url(self) -> str:
        return self.gateway.url + "/mcp"

    async def token(self, sub: str) -> str:
        return await anyio.to_thread.run_sync(self.gateway.token, sub, "")


def event_store(gateway: Gateway) -> MemoryEventStore:
    for route in gateway.server.app.routes:
        if getattr(route, "path", None) == "/mcp":
            binding = route.app  # McpAuth -> ... -> SessionBinding
            for _ in range(10):
                if isinstance(binding, SessionBinding):
                    return binding.store
                binding = binding.app
            raise AssertionError("no SessionBinding under /mcp")
    raise AssertionError("no /mcp route")


def spy_on(
    events: MemoryEventStore, seen: list[tuple[str, str | None, SessionScope | None]]
) -> None:
    """Records who (current_caller) and which session the store is used for."""
    store, replay = events.store_event, events.replay_events_after

    def where(method: str) -> None:
        caller, session = current_caller.get(), _current_session.get()
        seen.append((method, caller.subject if caller is not None else None, session))

    async def store_event(stream_id: StreamId, message: types.JSONRPCMessage | None) -> EventId:
        where("store" if message is not None else "prime")
        return await store(stream_id, message)

    async def replay_events_after(
        last_event_id: EventId, send_callback: EventCallback
    ) -> StreamId | None:
        where("replay")
        return await replay(last_event_id, send_callback)

    # A spy on this one store, in place of its methods.
    events.store_event = store_event  # type: ignore[method-assign]
    events.replay_events_after = replay_events_after  # type: ignore[method-assign]


@pytest.fixture
def resume(tmp_path: Path) -> Iterator[Resume]:
    box = ToolBox()
    gate = Gate()
    box.server.add_tool(gate.wait_for_gate, description="Answers when the test says so.")
    upstream = upstream_server(box)[0]
    gateway = start_gateway(tmp_path / "data", None, mcp_sse_retry_ms=RETRY_MS)
    try:
        with gateway.client() as admin:
            response = admin.post(
                "/mcp-servers", json={"name": "Alpha", "url": upstream.url + "/mcp"}
            )
            assert response.status_code == 201, response.text
        state = Resume(gateway, upstream, gate)
        spy_on(event_store(gateway), state.seen)
        yield state
    finally:
        stop_all(gateway.server, upstream)


# Raw HTTP --------------------------------------------------------------------


def sse(response: httpx.Response) -> list[dict[str, str]]:
    """The events of an SSE body (comments skipped), up to a JSON-RPC response:
    a replay that found its stream stays open, tailing it."""
    events: list[dict[str, str]] = []
    current: dict[str, str] = {}
    for line in response.iter_lines():
        if not line:
            if current:
                events.append(current)
                if '"result"' in current.get("data", "") or '"error"' in current.get("data", ""):
                    return events
            current = {}
        elif not line.startswith(":"):
            name, _, value = line.partition(":")
            current[name] = current.get(name, "") + value.removeprefix(" ")
    if current:
        events.append(current)
    return events


@dataclass
class Session:
    http: httpx.Client
    url: str
    token: str
    id: str = ""

    def headers(self, **extra: str) -> dict[str, str]:
        headers = {
            "Authorization": f"Bearer {self.token}",
            "Accept": "application/json, text/event-stream",
            "MCP-Protocol-Version": LEGACY,
            **extra,
        }
        if self.id:
            headers["Mcp-Session-Id"] = self.id
        return headers

    def post(self, body: dict[str, Any]) -> list[dict[str, str]]:
        with self.http.stream("POST", self.url, json=body, headers=self.headers()) as response:
            assert response.status_code in (200, 202), response.read()
            self.id = self.id or response.headers["mcp-session-id"]
            return sse(response) if response.status_code == 200 else []

    def resume(self, last_event_id: str) -> tuple[int, str, list[dict[str, str]]]:
        headers = self.headers(**{"Last-Event-ID": last_event_id})
        with self.http.stream("GET", self.url, headers=headers) as response:
            return response.status_code, response.headers["content-type"], sse(response)


def open_session(http: httpx.Client, url: str, token: str) -> Session:
    session = Session(http, url, token)
    params = {
        "protocolVersion": LEGACY,
        "capabilities": {},
        "clientInfo": {"name": "raw", "version": "1"},
    }
    session.post({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": params})
    session.post({"jsonrpc": "2.0", "method": "notifications/initialized"})
    return session


def call_add(session: Session, request_id: int = 1) -> list[dict[str, str]]:
    params = {"name": "alpha__add", "arguments": {"a": 2, "b": 3}}
    return session.post(
        {"jsonrpc": "2.0", "id": request_id, "method": "tools/call", "params": params}
    )


def test_a_call_stream_is_primed_with_retry(resume: Resume) -> None:
    with httpx.Client(timeout=10, verify=client_tls()) as http:
        session = open_session(http, resume.url, resume.gateway.token("alice"))
        priming, *rest = call_add(session)
    assert priming["data"] == "" and priming["retry"] == str(RETRY_MS)
    assert len(priming["id"]) >= 32  # unguessable
    assert '"result"' in rest[-1]["data"] and rest[-1]["id"] not in ("", priming["id"])


def test_another_users_event_id_replays_nothing(resume: Resume) -> None:
    alice, bob = resume.gateway.token("alice"), resume.gateway.token("bob")
    with httpx.Client(timeout=10, verify=client_tls()) as http:
        hers = open_session(http, resume.url, alice)
        priming = call_add(hers)[0]["id"]
        # Bob, in his own session, with the same request id and her event id.
        his = open_session(http, resume.url, bob)
        call_add(his)
        stolen = his.resume(priming)
        made_up = his.resume("x" * len(priming))
        # Alice in another session of hers: nothing either.
        other = open_session(http, resume.url, alice)
        elsewhere = other.resume(priming)
        # Alice in her own session: the result again.
        own = hers.resume(priming)
    assert stolen == made_up == elsewhere  # nothing tells a foreign id from an unknown one
    status, content_type, events = stolen
    assert status == 200 and content_type.startswith("text/event-stream")
    assert not [e for e in events if e.get("data")]
    replayed = [e for e in own[2] if e.get("data")]
    assert len(replayed) == 1 and '"structuredContent":{"result":5}' in replayed[0]["data"]


# The official client, its stream cut mid-call --------------------------------


class CutOnce(httpx2.AsyncBaseTransport):
    """Ends the first tools/call POST's SSE body after its first event (the
    priming one), as a dropped connection would; records the resuming GETs."""

    def __init__(self) -> None:
        self.inner = httpx2.AsyncHTTPTransport()
        self.cut = anyio.Event()
        self.resumed_with: list[str] = []

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        if request.method == "GET" and "last-event-id" in request.headers:
            self.resumed_with.append(request.headers["last-event-id"])
        response = await self.inner.handle_async_request(request)
        if request.method != "POST" or b'"tools/call"' not in request.content or self.cut.is_set():
            return response
        return httpx2.Response(
            response.status_code,
            headers=response.headers,
            stream=_FirstEvent(response, self.cut),
            request=request,
            extensions=response.extensions,
        )

    async def aclose(self) -> None:
        await self.inner.aclose()


class _FirstEvent(httpx2.AsyncByteStream):
    def __init__(self, response: httpx2.Response, cut: anyio.Event) -> None:
        self.response = response
        self.cut = cut

    async def __aiter__(self) -> AsyncIterator[bytes]:
        seen = b""
        async for chunk in self.response.aiter_raw():
            seen += chunk
            end = max(seen.find(b"\r\n\r\n"), seen.find(b"\n\n"))
            if end >= 0:
                yield seen[: end + 4 if seen[end : end + 4] == b"\r\n\r\n" else end + 2]
                break
        await self.response.aclose()  # the connection drops
        self.cut.set()

    async def aclose(self) -> None:
        await self.response.aclose()


async def test_a_dropped_call_stream_is_resumed(resume: Resume) -> None:
    cutter = CutOnce()
    token = await resume.token("alice")
    http = httpx2.AsyncClient(
        headers={"Authorization": f"Bearer {token}"},
        timeout=httpx2.Timeout(30, read=60),
        transport=cutter,
    )
    async with (
        http,
        Client(streamable_http_client(resume.url, http_client=http), mode="legacy") as client,
    ):
        async with anyio.create_task_group() as group:
            results: list[types.CallToolResult] = []

            async def call() -> None:
                results.append(await client.call_tool("alpha__wait_for_gate", {}))

            group.start_soon(call)
            with anyio.fail_after(20):
                await cutter.cut.wait()
            # The tool answers while the client is away; it gets the result anyway.
            resume.gate.open.set()
        assert text_of(results[0]) == "through the gate"
    assert len(cutter.resumed_with) == 1
    # The store was used as alice, in her session: by the session's router
    # task for the messages, by her requests for priming and the replay.
    # (The opening request's events are stored before its session has a
    # name: they are bound to the same scope, named once the response is.)
    sessions = {session for _, _, session in resume.seen}
    assert {who for _, who, _ in resume.seen} == {"alice"} and len(sessions) == 1
    (session,) = sessions
    assert session is not None and session.id is not None
    assert {method for method, _, _ in resume.seen} == {"prime", "store", "replay"}


async def test_modern_calls_use_no_event_store(resume: Resume) -> None:
    async with mcp_client(resume.url, await resume.token("alice"), "2026-07-28") as client:
        added = await client.call_tool("alpha__add", {"a": 1, "b": 1})
    assert added.structured_content == {"result": 2}
    assert resume.seen == [] and event_store(resume.gateway).count == 0


def test_a_deleted_session_loses_its_events(resume: Resume) -> None:
    events = event_store(resume.gateway)
    with httpx.Client(timeout=10, verify=client_tls()) as http:
        session = open_session(http, resume.url, resume.gateway.token("alice"))
        call_add(session)
        assert events.count > 0
        deleted = http.delete(resume.url, headers=session.headers())
        assert deleted.status_code == 200
    assert events.count == 0

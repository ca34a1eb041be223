"""The pass-through writes a stream's events as the SDK's JSON-RPC and REST
dispatchers write them (`gateway.agents.passthrough_streams`): the same bytes
for every kind of event, non-ASCII text and every request id kind included."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, MutableMapping
from typing import Any

import pytest
from a2a.server.events.event_queue import Event
from a2a.server.request_handlers.response_helpers import build_error_response
from a2a.types import (
    Artifact,
    Message,
    Part,
    Role,
    Task,
    TaskArtifactUpdateEvent,
    TaskState,
    TaskStatus,
    TaskStatusUpdateEvent,
)
from a2a.utils import json_utils, proto_utils
from a2a.utils.error_handlers import build_rest_error_payload
from a2a.utils.errors import TaskNotFoundError
from google.protobuf.json_format import MessageToDict
from jsonrpc.jsonrpc2 import JSONRPC20Response  # type: ignore[import-untyped]
from sse_starlette.event import ServerSentEvent
from starlette.responses import JSONResponse

from gateway.agents import passthrough_streams
from gateway.agents.passthrough_streams import EventStream, RestFraming, _data, event_data

EVENTS: list[Event] = [
    Task(id="t", context_id="c", status=TaskStatus(state=TaskState.TASK_STATE_SUBMITTED)),
    Task(),
    Message(message_id="m", role=Role.ROLE_AGENT, parts=[Part(text="grüße 🌍 \u2028")]),
    TaskStatusUpdateEvent(
        task_id="t", context_id="c", status=TaskStatus(state=TaskState.TASK_STATE_WORKING)
    ),
    TaskArtifactUpdateEvent(
        task_id="t",
        context_id="c",
        artifact=Artifact(artifact_id="a", parts=[Part(text="chunk\n")]),
        append=True,
        last_chunk=False,
    ),
]


def _sdk(event: Event, request_id: Any) -> bytes:
    """`JsonRpcDispatcher._process_streaming_request` and `_create_response`."""
    stream_response = proto_utils.to_stream_response(event)
    result = MessageToDict(stream_response, preserving_proto_field_name=False)
    item = JSONRPC20Response(result=result, _id=request_id).data
    return ServerSentEvent(data=json_utils.dumps(item)).encode()


@pytest.mark.parametrize("request_id", ["req-1", 7, None, "ü"])
@pytest.mark.parametrize("event", EVENTS, ids=lambda e: type(e).__name__)
def test_each_event_is_written_as_the_sdk_writes_it(event: Event, request_id: Any) -> None:
    assert event_data(event, request_id) == _sdk(event, request_id)


def test_an_error_event_is_written_as_the_sdk_writes_it() -> None:
    error = build_error_response("req-1", TaskNotFoundError())
    said = ServerSentEvent(data=json_utils.dumps(error), event="error").encode()
    assert _data(error, "error") == said


@pytest.mark.parametrize("event", EVENTS, ids=lambda e: type(e).__name__)
def test_each_http_json_event_is_written_as_the_sdk_writes_it(event: Event) -> None:
    """`RestDispatcher.on_message_send_stream`: the `StreamResponse` itself."""
    said = MessageToDict(proto_utils.to_stream_response(event))
    assert RestFraming().event(event) == ServerSentEvent(data=json_utils.dumps(said)).encode()


@pytest.mark.parametrize("error", [TaskNotFoundError(), ValueError("boom")], ids=type)
def test_an_http_json_error_is_written_as_the_sdk_writes_it(error: Exception) -> None:
    """`RestDispatcher._handle_streaming`: an error during the stream is an
    `error` event of its REST payload; before it, that payload under its status."""
    payload = build_rest_error_payload(error)
    framing = RestFraming()
    said = ServerSentEvent(data=json_utils.dumps(payload), event="error").encode()
    assert framing.failure(error) == said
    refusal = framing.refusal(error)
    assert refusal.status_code == payload["error"]["code"]
    assert bytes(refusal.body) == JSONResponse(payload).body


class _Caller:
    """The ASGI side of one caller: what was written, and a way to go away."""

    def __init__(self) -> None:
        self.written: list[MutableMapping[str, Any]] = []
        self.gone = asyncio.Event()

    async def receive(self) -> dict[str, Any]:
        await self.gone.wait()
        return {"type": "http.disconnect"}

    async def send(self, message: MutableMapping[str, Any]) -> None:
        self.written.append(message)

    def bodies(self) -> list[bytes]:
        return [m["body"] for m in self.written if m["type"] == "http.response.body"]


async def test_a_stream_is_written_event_by_event_then_ended() -> None:
    async def events() -> AsyncGenerator[bytes]:
        for chunk in (b"data: 1\r\n\r\n", b"data: 2\r\n\r\n"):
            yield chunk

    caller = _Caller()
    await EventStream(events())({"type": "http"}, caller.receive, caller.send)
    assert caller.written[0]["type"] == "http.response.start"
    assert caller.bodies() == [b"data: 1\r\n\r\n", b"data: 2\r\n\r\n", b""]
    assert caller.written[-1]["more_body"] is False


async def test_a_caller_gone_closes_the_stream_and_its_events() -> None:
    closed = asyncio.Event()
    waiting = asyncio.Event()

    async def events() -> AsyncGenerator[bytes]:
        try:
            yield b"data: 1\r\n\r\n"
            waiting.set()
            await asyncio.Event().wait()  # an agent that has more to say, later
            yield b"never"
        finally:
            closed.set()

    caller = _Caller()
    response = asyncio.create_task(
        EventStream(events())({"type": "http"}, caller.receive, caller.send)
    )
    await waiting.wait()
    caller.gone.set()
    await asyncio.wait_for(response, 5)
    assert closed.is_set() and not response.cancelled()
    assert b"never" not in caller.bodies()


async def test_a_quiet_stream_is_pinged(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(passthrough_streams, "PING_SECONDS", 0.01)
    release = asyncio.Event()
    caller = _Caller()
    sent = caller.send

    async def send(message: MutableMapping[str, Any]) -> None:
        await sent(message)
        if message.get("body", b"").startswith(b": ping - "):
            release.set()

    async def events() -> AsyncGenerator[bytes]:
        await release.wait()  # quiet until the caller was pinged
        yield b"data: 1\r\n\r\n"

    await asyncio.wait_for(EventStream(events())({"type": "http"}, caller.receive, send), 5)
    assert caller.bodies()[0].startswith(b": ping - ")
    assert caller.bodies()[-2:] == [b"data: 1\r\n\r\n", b""]


async def test_an_error_in_the_stream_reaches_the_server() -> None:
    async def events() -> AsyncGenerator[bytes]:
        yield b"data: 1\r\n\r\n"
        raise RuntimeError("broken")

    caller = _Caller()
    with pytest.raises(RuntimeError, match="broken"):
        await EventStream(events())({"type": "http"}, caller.receive, caller.send)

"""The pass-through writes a stream's events as the SDK's JSON-RPC and REST
dispatchers write them (`gateway.agents.passthrough_streams`): the same bytes
for every kind of event, non-ASCII text and every request id kind included."""

from __future__ import annotations

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

from gateway.agents.passthrough_streams import RestFraming, _data, event_data

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

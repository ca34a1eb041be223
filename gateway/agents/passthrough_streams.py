"""The pass-through's streams: A2A 1.0 `SendStreamingMessage`, written by the door.

`gateway.agents.passthrough` takes a same-version request it has parsed and
checked -- JSON-RPC's `SendStreamingMessage`, or HTTP+JSON's `message:stream`
(`Framing`: the two bindings differ only in how an event and an error are
written); for a stream to an agent that streams, the stream is the
handler's own `stream_message` -- the operation a flow's step calls: the
message and skill checks, the fallback, `_relay` with `Delegate.stream` (the
breaker, the duration cap, the core check, each event recorded before it is
passed on, the one record) -- and only the SDK's dispatcher around it is left
out. That dispatcher parses the request again, wraps the handler twice, copies
each event into a `StreamResponse` to encode it, and writes it through
sse-starlette, which takes a cancel scope and a lock for every event; here each
event is encoded once and written as one ASGI message.

What the caller sees is the SDK's, byte for byte in the events:

* an error before the first event is an error answer in the binding's form
  (JSON-RPC's error object; HTTP+JSON's error payload under its HTTP
  status), not a stream (an outage's is 503 with `Retry-After`:
  `gateway.agents.outages`);
* each event is `data: <the JSON-RPC response>` (HTTP+JSON: `data: <the
  StreamResponse>`) with the SDK's encoding (`json_utils.dumps`), an error
  during the stream an `error` event, then the end;
* the headers sse-starlette sends, and its keep-alive comment every 15 s.

The stream is closed -- the upstream connection and the record with it --
when the caller goes away (its `http.disconnect`) or the server stops it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncGenerator, Callable
from datetime import UTC, datetime
from typing import Any

import anyio
from a2a.server.events.event_queue import Event
from a2a.server.request_handlers.response_helpers import build_error_response
from a2a.types import (
    Message,
    SendMessageRequest,
    SendMessageResponse,
    Task,
    TaskArtifactUpdateEvent,
    TaskStatusUpdateEvent,
)
from a2a.utils import json_utils
from a2a.utils.constants import A2A_JSON_MEDIA_TYPE
from a2a.utils.error_handlers import build_rest_error_payload
from a2a.utils.errors import A2AError, InternalError
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.types import Receive, Scope, Send

from adapters.a2a_json import message_json
from gateway.agents.admission import Admission
from gateway.agents.jsonrpc_send import envelope
from gateway.agents.outages import noted_errors

logger = logging.getLogger(__name__)

OPERATION = "SendStreamingMessage"
# sse-starlette's: its default ping interval and the headers it adds.
PING_SECONDS = 15.0
_HEADERS = {"Cache-Control": "no-store", "Connection": "keep-alive", "X-Accel-Buffering": "no"}
# The member of `StreamResponse` (JSON name) each event kind is sent under.
_MEMBERS: dict[type, str] = {
    Task: "task",
    Message: "message",
    TaskStatusUpdateEvent: "statusUpdate",
    TaskArtifactUpdateEvent: "artifactUpdate",
}

StreamOperation = Callable[[Admission, SendMessageRequest], AsyncGenerator[Event]]


def streams(card: dict[str, Any]) -> bool:
    """The agent says it streams (else the SDK path answers with its one answer)."""
    capabilities = card.get("capabilities")
    return isinstance(capabilities, dict) and bool(capabilities.get("streaming"))


class Framing:
    """How JSON-RPC writes an answer, a stream's events and errors (the SDK's
    `JsonRpcDispatcher`): each under the request's id."""

    def __init__(self, request_id: Any) -> None:
        self.request_id = request_id

    def result(self, result: SendMessageResponse) -> Response:
        """A `SendMessage` answer: the result re-encoded (`envelope` says why)."""
        body = envelope(self.request_id, "result", result)
        return Response(body, media_type="application/json")

    def refusal(self, error: Exception) -> Response:
        """An error met before an answer or a stream's first event: the answer."""
        return JSONResponse(build_error_response(self.request_id, _a2a(error)))

    def event(self, event: Event) -> bytes:
        return event_data(event, self.request_id)

    def failure(self, error: Exception) -> bytes:
        """An error during the stream: its `error` event."""
        return _data(build_error_response(self.request_id, _a2a(error)), "error")


class RestFraming(Framing):
    """How HTTP+JSON writes them (the SDK's `RestDispatcher`): the
    `SendMessageResponse` or `StreamResponse` itself; an error as its REST
    payload, under its HTTP status when it is the answer."""

    def __init__(self) -> None:
        super().__init__(None)

    def result(self, result: SendMessageResponse) -> Response:
        return JSONResponse(message_json(result), media_type=A2A_JSON_MEDIA_TYPE)

    def refusal(self, error: Exception) -> Response:
        payload = build_rest_error_payload(error)
        return JSONResponse(payload, status_code=payload["error"].get("code", 500))

    def event(self, event: Event) -> bytes:
        return _data({_MEMBERS[type(event)]: message_json(event)})

    def failure(self, error: Exception) -> bytes:
        return _data(build_rest_error_payload(error), "error")


def _a2a(error: Exception) -> A2AError:
    # JSON-RPC's dispatcher answers any other exception as an internal error.
    return error if isinstance(error, A2AError) else InternalError(message=str(error))


async def stream_answer(
    operation: StreamOperation, admission: Admission, params: SendMessageRequest, framing: Framing
) -> Response:
    """The answer to a checked `SendStreamingMessage`: the stream of
    ``operation``, or the error met before its first event."""
    events = noted_errors(operation)(admission, params)
    try:
        first: Event | None = await anext(events)
    except StopAsyncIteration:
        first = None
    except A2AError as error:
        await events.aclose()
        return framing.refusal(error)
    except Exception as exc:  # as the SDK's dispatcher answers it
        await events.aclose()
        logger.exception("Unhandled exception")
        return framing.refusal(exc)
    return EventStream(_encoded(first, events, framing))


def _data(document: dict[str, Any], name: str | None = None) -> bytes:
    said = f"event: {name}\r\ndata: " if name else "data: "
    return (said + json_utils.dumps(document) + "\r\n\r\n").encode()


def event_data(event: Event, request_id: Any) -> bytes:
    """One event as the SDK's dispatcher writes it (`to_stream_response`,
    `MessageToDict`, here `message_json`; the JSON-RPC response, `json_utils.dumps`)."""
    result = {_MEMBERS[type(event)]: message_json(event)}
    return _data({"result": result, "id": request_id, "jsonrpc": "2.0"})  # its key order


async def _encoded(
    first: Event | None, events: AsyncGenerator[Event], framing: Framing
) -> AsyncGenerator[bytes]:
    async with contextlib.aclosing(events):
        try:
            if first is None:
                return
            yield framing.event(first)
            async for event in events:
                yield framing.event(event)
        except A2AError as error:
            yield framing.failure(error)
        except Exception as exc:
            logger.exception("Unhandled error during an SSE stream")
            yield framing.failure(exc)


class EventStream(StreamingResponse):
    """Server-sent events, one ASGI message each; ended when the caller goes.

    One watcher task beside the stream: it reads the caller's side (uvicorn
    reports a closed connection only there, as `http.disconnect`; a write to
    it is silently dropped) and writes the keep-alive comment while nothing
    else is written. The stream itself runs in the response's own task under
    a cancel scope the watcher cancels, so the relay's shielded flush still
    runs when the caller goes (an anyio task group of two children costs
    several times as much per stream)."""

    def __init__(self, events: AsyncGenerator[bytes]) -> None:
        super().__init__(events, headers=_HEADERS, media_type="text/event-stream")
        self._events = events

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send(
            {"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers}
        )
        with anyio.CancelScope() as until_gone:
            watcher = asyncio.create_task(_watch(receive, send, until_gone))
            try:
                async with contextlib.aclosing(self._events) as events:
                    async for chunk in events:
                        await send({"type": "http.response.body", "body": chunk, "more_body": True})
            finally:
                watcher.cancel()
        await send({"type": "http.response.body", "body": b"", "more_body": False})


async def _watch(receive: Receive, send: Send, until_gone: anyio.CancelScope) -> None:
    """Ping every `PING_SECONDS` the caller's side is quiet; when the caller
    goes (or a ping cannot be written), stop the stream."""
    try:
        while True:
            try:
                async with asyncio.timeout(PING_SECONDS):
                    message = await receive()
            except TimeoutError:
                ping = f": ping - {datetime.now(UTC)}\r\n\r\n".encode()
                await send({"type": "http.response.body", "body": ping, "more_body": True})
                continue
            if message["type"] == "http.disconnect":
                break
    except Exception:
        logger.debug("the caller's side of a stream failed", exc_info=True)
    until_gone.cancel()

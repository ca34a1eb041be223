"""`SendStreamingMessage` to an A2A 1.0 JSON-RPC agent, read at the JSON level.

The SDK's client transport reads a stream through httpx (over the shared
aiohttp pool, `adapters.http`) and its own SSE reader; per stream that is an
httpx request built and sent through two libraries, per event a line decoder
and a text decoder, which together cost more than the rest of the relay. The
same-version stream is read here instead, straight from the pool
(`UpstreamHTTP.post_stream`), with the SDK transport's own rules, in its order:

1. the request is the SDK's: a JSON-RPC envelope around the canonical JSON of
   the checked request, with the call's own headers (the minted token, the
   extensions asked) and the pool's (`A2A-Version`, no content coding);
2. an HTTP error status is raised as the SDK raises it (its `A2AClientError`
   from httpx's `HTTPStatusError`, which holds the answer: a refused user's
   token is seen as on the SDK path); an answer that is not an event stream
   is read whole, as one event;
3. each event: the SSE fields as the SDK's `parse_sse_stream` reads them (an
   `error` event raises the agent's error), the JSON-RPC envelope checked by
   the SDK client's check (`gateway.agents.jsonrpc_answers`), the result parsed
   tolerantly (`adapters.a2a_tolerance`) into the `StreamResponse` the relay
   records and passes on.

Transport failures are aiohttp's own, which `gateway.agents.upstream_errors`
and the breaker read as they read the pass-through's.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any

import aiohttp
import httpx
from a2a.client.client import ClientCallContext
from a2a.client.errors import A2AClientError
from a2a.client.transports.base import ClientTransport
from a2a.client.transports.jsonrpc import JsonRpcTransport
from a2a.types import SendMessageRequest, StreamResponse
from a2a.utils.constants import PROTOCOL_VERSION_CURRENT, VERSION_HEADER

from adapters.a2a_json import message_json
from adapters.a2a_tolerance import parse_tolerant
from adapters.http import UpstreamHTTP
from gateway.agents.jsonrpc_answers import check_answer

# The SDK transport's, and the pool's own (`A2AUpstreams`): `A2A-Version`.
_HEADERS = {
    VERSION_HEADER: PROTOCOL_VERSION_CURRENT,
    "Accept": "text/event-stream",
    "Cache-Control": "no-store",
    "Content-Type": "application/json",
}


def send_message_streaming(
    http: UpstreamHTTP,
    transport: ClientTransport,
    request: SendMessageRequest,
    context: ClientCallContext,
) -> AsyncIterator[StreamResponse]:
    """The agent's stream of events for ``request``: read here for an A2A 1.0
    JSON-RPC agent, by the SDK's transport for any other."""
    if not isinstance(transport, JsonRpcTransport):
        return transport.send_message_streaming(request, context=context)
    return _events(http, transport, request, context)


async def _events(
    http: UpstreamHTTP,
    transport: JsonRpcTransport,
    request: SendMessageRequest,
    context: ClientCallContext,
) -> AsyncGenerator[StreamResponse]:
    envelope = {
        "jsonrpc": "2.0",
        "method": "SendStreamingMessage",
        "params": message_json(request),
        "id": str(uuid.uuid4()),
    }
    # As httpx encodes a JSON body.
    body = json.dumps(envelope, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    headers = {**_HEADERS, **(context.service_parameters or {})}
    answer = http.post_stream(transport.url, body.encode(), headers)
    try:
        head = await anext(answer)
        assert isinstance(head, aiohttp.ClientResponse)
        if not 200 <= head.status < 300:  # as httpx's `raise_for_status`
            await _refused(transport.url, head, answer)
        if "text/event-stream" not in head.headers.get("Content-Type", ""):
            lines = [line async for line in answer if isinstance(line, bytes)]
            yield _event(transport, b"\n".join(lines))
            return
        async for name, data in _sse(answer):
            if name == "error":
                _error_event(transport, data)
            yield _event(transport, data)
    finally:
        await answer.aclose()


async def _refused(url: str, head: aiohttp.ClientResponse, rest: AsyncIterator[Any]) -> None:
    """The SDK's error for an HTTP error status, from httpx's, which holds
    the answer (its status and headers; the body, read whole)."""
    content = b"\n".join([line async for line in rest if isinstance(line, bytes)])
    said = httpx.Response(
        head.status,
        headers=list(head.headers.items()),
        content=content,
        request=httpx.Request("POST", url),
    )
    try:
        said.raise_for_status()
    except httpx.HTTPStatusError as e:
        raise A2AClientError(f"HTTP Error {said.status_code}: {e}") from e


async def _sse(lines: AsyncIterator[Any]) -> AsyncGenerator[tuple[str, bytes]]:
    """(event name, data) of each event with data, as the SDK's `parse_sse_stream`
    reads them (W3C Server-Sent Events: fields by their first colon, one
    space after it dropped, comments skipped, data lines joined by LF; an
    event not ended by a blank line when the stream ends is dropped)."""
    name, data = "message", list[bytes]()
    async for line in lines:
        if not line:
            joined = b"\n".join(data)
            if joined:  # (an event without data is none)
                yield name, joined
            name, data = "message", []
            continue
        if line.startswith(b":"):
            continue
        key, _, value = line.partition(b":")
        if value.startswith(b" "):
            value = value[1:]
        if key == b"event":
            name = value.decode("utf-8", "replace")
        elif key == b"data":
            data.append(value)


def _loaded(data: bytes) -> Any:
    return json.loads(data.decode("utf-8", "replace"))


def _event(transport: JsonRpcTransport, data: bytes) -> StreamResponse:
    try:
        answer = _loaded(data)
    except json.JSONDecodeError as e:
        raise A2AClientError(f"Invalid JSON-RPC response in SSE stream: {e}") from e
    checked = check_answer(answer)
    return parse_tolerant(checked["result"], StreamResponse())


def _error_event(transport: JsonRpcTransport, data: bytes) -> None:
    """An `error` event: the agent's error, raised as the SDK raises it."""
    try:
        answer = _loaded(data)
    except json.JSONDecodeError:
        answer = None
    if isinstance(answer, dict) and isinstance(answer.get("error"), dict):
        check_answer(answer)  # raises the error's own class
    raise A2AClientError(f"SSE stream error: {data.decode('utf-8', 'replace')}")

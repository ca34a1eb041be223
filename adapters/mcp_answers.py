"""A pass-through `tools/call`'s answer, read as the SDK's client reads it.

`adapters.mcp_passthrough` sends a `tools/call` to a 2026-07-28 server
itself; what comes back must be taken exactly as the SDK would take it, so
that a caller sees the same result, notification and failure either way:

* an SSE answer is read as the SDK's Streamable HTTP transport reads it
  (httpx2's SSE parser and per-event cap), up to the response: a progress
  notification for the call's token goes to its progress callback as the
  SDK's dispatcher sends it, other notifications (a log message, a resource
  updated) to the session's handlers, a request the server makes on the
  stream is dropped (`read_events`);
* a JSON-RPC response is its result, its error raised as the SDK raises it
  (`MCPError` with the SDK's code and wording: `response_of`, `error_of`);
* the result is checked as `ClientSession.send_request` and `call_tool`
  check it: the revision's result schema, the result union, the tool's
  output schema (`checked_result`).
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any, Final

import aiohttp
import httpx2
import mcp_types as types
from mcp import MCPError
from mcp.client.session import ClientSession
from mcp.shared.dispatcher import ProgressFnT
from mcp_types import CONNECTION_CLOSED, PARSE_ERROR
from mcp_types import methods as _methods

from adapters.mcp_relay import on_log
from adapters.mcp_results import (
    CALL_TOOL_RESULT,
    complete_by_default,
    floor_ttl,
    later_revision_fields,
)

logger = logging.getLogger(__name__)

METHOD: Final = "tools/call"
OnNotice = Callable[[Any], Any]  # McpUpstream._on_message


async def read_events(
    response: aiohttp.ClientResponse,
    max_event_bytes: int | None,
    request_id: int,
    version: str,
    progress_callback: ProgressFnT | None,
    on_notice: OnNotice | None,
) -> dict[str, Any]:
    """Read the SSE answer as the SDK's transport does (httpx2's
    `EventSource`, its cap of ``max_event_bytes`` per event), up to the
    response."""
    events = httpx2.EventSource(_as_httpx2(response), max_event_size=max_event_bytes)
    try:
        async for sse in events:
            if sse.event != "message" or not sse.data:
                continue  # priming events; unknown event types
            answer = await _event(sse.data, request_id, version, progress_callback, on_notice)
            if answer is not None:
                return answer
    except httpx2.SSEError as exc:
        raise MCPError(CONNECTION_CLOSED, f"SSE stream failed: {exc}") from None
    raise MCPError(CONNECTION_CLOSED, "SSE stream ended without a response")


class _Body(httpx2.AsyncByteStream):
    """An aiohttp response's body, as it arrives."""

    def __init__(self, response: aiohttp.ClientResponse) -> None:
        self._response = response

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self._response.content.iter_any():
            yield chunk


def _as_httpx2(response: aiohttp.ClientResponse) -> httpx2.Response:
    """``response`` as httpx2 sees one, for its public `EventSource`: the
    content type (the charset the text is decoded with) and the body; no
    content coding (aiohttp has undone any, and `refuse_coding` refused
    others)."""
    content_type = response.headers.get("Content-Type", "")
    return httpx2.Response(
        response.status,
        headers={"Content-Type": content_type},
        stream=_Body(response),
        request=_request_to(str(response.url)),
    )


@functools.lru_cache(maxsize=256)
def _request_to(url: str) -> httpx2.Request:
    # Only named in httpx2's errors; one per upstream URL (building one parses it).
    return httpx2.Request("POST", url)


async def _event(
    data: str,
    request_id: int,
    version: str,
    progress_callback: ProgressFnT | None,
    on_notice: OnNotice | None,
) -> dict[str, Any] | None:
    """One SSE message: a notification is handled, the response returned."""
    try:
        message = json.loads(data)
    except ValueError as exc:
        raise MCPError(PARSE_ERROR, f"Failed to parse SSE message: {exc}") from None
    if not isinstance(message, dict):
        raise MCPError(PARSE_ERROR, "Failed to parse SSE message: not a JSON-RPC message")
    if "result" in message or "error" in message:
        # The SDK's transport takes any response on a request's stream as
        # that request's (it rewrites the id to the request's own).
        return response_of(message, None)
    method = message.get("method")
    if not isinstance(method, str):
        raise MCPError(PARSE_ERROR, "Failed to parse SSE message: not a JSON-RPC message")
    if "id" in message:
        logger.debug("dropped a %r request on a 2026-07-28 call's stream", method)
        return None
    params = message.get("params")
    if method == "notifications/progress":
        await _progress(params, request_id, progress_callback)
    try:
        notification = _methods.parse_server_notification(method, version, params)
    except KeyError:
        logger.debug("dropped %r: not defined at %s", method, version)
        return None
    except ValueError:  # pydantic's ValidationError
        logger.warning("Failed to validate notification: %s", method, exc_info=True)
        return None
    try:
        if isinstance(notification, types.LoggingMessageNotification):
            await on_log(notification.params)
        if on_notice is not None:
            await on_notice(notification)
    except Exception:
        logger.exception("notification callback for %r raised", method)
    return None


async def _progress(params: Any, request_id: int, progress_callback: ProgressFnT | None) -> None:
    """A progress notification for this request's token, to ``progress_callback``."""
    # The SDK's dispatcher's test, for this request's token.
    match params:
        case {"progressToken": int() | str() as token, "progress": int() | float() as p} if (
            isinstance(params, dict)
            and progress_callback is not None
            and not isinstance(token, bool)
            and not isinstance(p, bool)
            and str(token) == str(request_id)
        ):
            total = params.get("total")
            text = params.get("message")
            try:
                await progress_callback(
                    float(p),
                    float(total) if isinstance(total, int | float) else None,
                    text if isinstance(text, str) else None,
                )
            except Exception:  # as the SDK's dispatcher: costs only this update
                logger.exception("progress callback raised")
        case _:
            pass


def error_of(body: bytes) -> types.ErrorData | None:
    try:
        message = json.loads(body)
        if isinstance(message, dict) and message.get("jsonrpc") == "2.0":
            error = message.get("error")
            if isinstance(error, dict) and "result" not in message:
                return types.ErrorData.model_validate(error)
    except ValueError:
        pass
    return None


def response_of(answer: bytes | dict[str, Any], request_id: int | None) -> dict[str, Any]:
    """The result of a JSON-RPC response, or its error raised as the SDK raises it."""
    try:
        message = json.loads(answer) if isinstance(answer, bytes) else answer
    except ValueError as exc:
        raise MCPError(PARSE_ERROR, f"Failed to parse JSON response: {exc}") from None
    if not isinstance(message, dict) or message.get("jsonrpc") != "2.0":
        raise MCPError(PARSE_ERROR, "Failed to parse JSON response: not a JSON-RPC response")
    if request_id is not None and message.get("id") != request_id:
        raise MCPError(PARSE_ERROR, "Failed to parse JSON response: the answer is to another id")
    error = message.get("error")
    if error is not None:
        try:
            data = types.ErrorData.model_validate(error)
        except ValueError as exc:
            raise MCPError(PARSE_ERROR, f"Failed to parse JSON response: {exc}") from None
        raise MCPError(data.code, data.message, data.data)
    result = message.get("result")
    if not isinstance(result, dict):
        raise MCPError(PARSE_ERROR, "Failed to parse JSON response: no result object")
    return result


async def checked_result(
    session: ClientSession, name: str, version: str, raw: dict[str, Any]
) -> types.CallToolResult | types.InputRequiredResult:
    """`ClientSession.send_request`'s checks, then `call_tool`'s."""
    floor_ttl(raw)
    raw = complete_by_default(METHOD, version, raw)
    with contextlib.suppress(KeyError):
        _methods.validate_server_result(METHOD, version, raw)
    if not (foreign := later_revision_fields(METHOD, version)).isdisjoint(raw):
        raw = {key: value for key, value in raw.items() if key not in foreign}
    result = CALL_TOOL_RESULT.validate_python(raw, by_name=False)
    if isinstance(result, types.CallToolResult) and not result.is_error:
        await session.validate_tool_result(name, result)
    return result

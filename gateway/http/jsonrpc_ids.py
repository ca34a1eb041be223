"""JSON-RPC errors keep the request's id whenever the request had one.

JSON-RPC 2.0 section 5 ("Response object"): the id "MUST be the same as the
value of the id member in the Request Object. If there was an error in
detecting the id in the Request Object (e.g. Parse error/Invalid Request), it
MUST be Null." The MCP SDK's transport answers a request whose envelope it
refuses -- `"jsonrpc": "1.0"`, a `method` that is no string, `params` that
are no object, a batch -- with `"id": null` even when the id was right there,
so a caller cannot tell which of its requests failed. And the 2025-11-25
lane answers such a request with -32602 and pydantic's whole report (links
to pydantic's site included), where section 5.1 says -32600 Invalid Request:
"The JSON sent is not a valid Request object."

`KeepRequestId` wraps an ASGI JSON-RPC endpoint: it keeps the request body's
chunks as they pass (no copy, no parse), and only when the answer is a
single JSON error object with a null id does it read the request's id. An
id that is a string or an integer is put back; a body that is not one JSON
object, or whose id is missing, null or of another type, keeps the null
(the id could not be detected); the envelope refusal becomes -32600 either
way. Streams (SSE), successful answers and errors that already carry an id
pass through untouched.
"""

from __future__ import annotations

import json
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

PARSE_ERROR = -32700
INVALID_REQUEST = -32600
INVALID_PARAMS = -32602
_ENVELOPE_REFUSED = "Validation error"  # how the MCP SDK's session lane says it


class KeepRequestId:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("method") != "POST":
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []
        held: list[Message] = []

        async def receive_kept() -> Message:
            message = await receive()
            if message["type"] == "http.request":
                chunks.append(message.get("body", b""))
            return message

        async def send_checked(message: Message) -> None:
            if message["type"] == "http.response.start":
                if _json_error_status(message):
                    held.append(message)  # wait for the body
                    return
            elif held and message["type"] == "http.response.body":
                held.append(message)
                if message.get("more_body", False):
                    return
                start, *bodies = held
                held.clear()
                body = b"".join(m.get("body", b"") for m in bodies)
                fixed = _with_request_id(body, b"".join(chunks))
                headers = [
                    (k, str(len(fixed)).encode() if k.lower() == b"content-length" else v)
                    for k, v in start.get("headers", [])
                ]
                await send({**start, "headers": headers})
                await send({"type": "http.response.body", "body": fixed})
                return
            await send(message)

        await self.app(scope, receive_kept, send_checked)


def _json_error_status(start: Message) -> bool:
    """A 4xx JSON answer: where a refused envelope is answered."""
    if not 400 <= start.get("status", 200) < 500:
        return False
    for key, value in start.get("headers", []):
        if key.lower() == b"content-type":
            return bool(value.split(b";")[0].strip().lower() == b"application/json")
    return False


def _with_request_id(answer: bytes, request: bytes) -> bytes:
    try:
        error = json.loads(answer)
    except ValueError:
        return answer
    if not (isinstance(error, dict) and "error" in error and error.get("id", 0) is None):
        return answer
    error["id"] = request_id(request)
    detail = error.get("error")
    if (
        isinstance(detail, dict)
        and detail.get("code") == INVALID_PARAMS
        and str(detail.get("message", "")).startswith(_ENVELOPE_REFUSED)
    ):
        # The envelope itself was refused (section 5.1: Invalid Request), not
        # a method's params; pydantic's report is for us, not the caller.
        error["error"] = {
            "code": INVALID_REQUEST,
            "message": "Invalid Request: not a JSON-RPC 2.0 request object "
            '("jsonrpc": "2.0", a string "method", "params" an object if present)',
        }
    return json.dumps(error, separators=(",", ":")).encode()


def request_id(body: bytes) -> Any:
    """The request's id if it is one JSON-RPC allows and the body says it
    plainly: a string or an integer (not a boolean) of a single object."""
    try:
        request = json.loads(body)
    except (ValueError, RecursionError):
        return None
    if not isinstance(request, dict):
        return None
    request_id = request.get("id")
    if isinstance(request_id, bool) or not isinstance(request_id, str | int):
        return None
    return request_id

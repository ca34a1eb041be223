"""Answers the front door gives itself: refusals in either binding, cards
with caching headers, and a JSON-RPC body parsed once.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import datetime
from email.utils import format_datetime
from typing import Any, Protocol, TypeVar

from a2a.server.request_handlers.response_helpers import build_error_response
from a2a.utils.error_handlers import build_rest_error_payload
from a2a.utils.errors import InvalidParamsError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from gateway.agents.cards import etag
from gateway.delegation.pipeline import CoordinationRefused, DelegationDenied, RateLimited
from registry.tables import as_utc

# Implementation-defined server error (JSON-RPC reserves -32000..-32099; A2A
# uses -32001..-32009): the gateway refused to delegate.
DELEGATION_REFUSED = -32000
T = TypeVar("T")


class Refuse(Protocol):
    """`jsonrpc_refusal` or `rest_refusal` (bound to a request's id)."""

    def __call__(
        self,
        status: int,
        message: str,
        data: Any = None,
        headers: dict[str, str] | None = None,
    ) -> Response: ...


def jsonrpc_refusal(
    status: int,
    message: str,
    data: Any = None,
    headers: dict[str, str] | None = None,
    *,
    request_id: Any = None,
) -> Response:
    """A refusal in JSON-RPC's error form, under the request's own id
    (JSON-RPC 2.0 §5: null only when the id could not be read)."""
    error: dict[str, Any] = {"code": DELEGATION_REFUSED, "message": message}
    if data is not None:
        error["data"] = data
    return JSONResponse(
        {"jsonrpc": "2.0", "id": request_id, "error": error}, status_code=status, headers=headers
    )


def request_id_of(request: Request) -> Any:
    """The id of a JSON-RPC request whose body was parsed (`parse_jsonrpc_body`),
    if it is one JSON-RPC allows (a string or a number; not a boolean)."""
    body = jsonrpc_body(request)
    found = body.get("id") if isinstance(body, dict) else None
    if isinstance(found, bool) or not isinstance(found, str | int | float):
        return None
    return found


def rest_refusal(
    status: int, message: str, data: Any = None, headers: dict[str, str] | None = None
) -> Response:
    grpc_status = {
        400: "INVALID_ARGUMENT",
        403: "PERMISSION_DENIED",
        404: "NOT_FOUND",
        409: "ABORTED",  # google.rpc.Code: a concurrency conflict
        429: "RESOURCE_EXHAUSTED",
    }.get(status, "FAILED_PRECONDITION")
    body: dict[str, Any] = {"code": status, "status": grpc_status, "message": message}
    if data is not None:
        body["details"] = [
            {
                "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                "reason": "DELEGATION_REFUSED",
                "domain": "switchboard",
                "metadata": {k: str(v) for k, v in data.items()},
            }
        ]
    return JSONResponse({"error": body}, status_code=status, headers=headers)


def invalid_params(
    error: InvalidParamsError, jsonrpc: bool, request_id: Any, legacy: bool
) -> Response:
    """The SDK's own answer to an invalid request, which the front door gives
    itself before the SDK sees the request: JSON-RPC -32602 under the
    caller's request id (0.3's error shape for a 0.3 method), or HTTP+JSON 400
    INVALID_ARGUMENT."""
    if not jsonrpc:
        return JSONResponse(build_rest_error_payload(error), status_code=400)
    if isinstance(request_id, bool) or not isinstance(request_id, str | int | None):
        request_id = None
    if legacy:
        fault = {"code": -32602, "message": error.message, "data": error.data}
        return JSONResponse({"jsonrpc": "2.0", "id": request_id, "error": fault})
    return JSONResponse(build_error_response(request_id, error))


def card_response(
    request: Request, document: dict[str, Any], modified: datetime | None
) -> Response:
    """A card with the caching headers of A2A 1.0 §8.6.1: a weak ETag (and a
    304 for a matching If-None-Match), Last-Modified when known, and a short
    max-age so a re-registered card is picked up within a minute."""
    headers = {"Cache-Control": "public, max-age=60", "ETag": etag(document)}
    if modified is not None:
        headers["Last-Modified"] = format_datetime(as_utc(modified), usegmt=True)
    wanted = request.headers.get("if-none-match", "")
    tags = {t.strip().removeprefix("W/") for t in wanted.split(",")}
    if "*" in tags or headers["ETag"].removeprefix("W/") in tags:
        return Response(status_code=304, headers=headers)
    return JSONResponse(document, headers=headers)


async def parse_jsonrpc_body(request: Request) -> Response | None:
    """Parse the body once, here, so that JSON nested deep enough to exhaust the
    parser's recursion is a parse error (-32700), not the SDK's internal error
    carrying Python's exception text; and so is a string holding an unpaired
    UTF-16 surrogate (`"\\ud800"`, which `json` decodes and no UTF-8 encoder
    will write back: the SDK's error answer echoing it was a 500)."""
    if _BODY in request.scope:
        return None  # parsed already (to find the skill before admission)
    body = await request.body()
    try:
        parsed = json.loads(body)
    except (ValueError, RecursionError):
        error = {"code": -32700, "message": "the request body is not valid JSON"}
        return JSONResponse({"jsonrpc": "2.0", "id": None, "error": error})
    if _MAYBE_SURROGATE.search(body) and _has_lone_surrogate(parsed):
        error = {"code": -32700, "message": _SURROGATE}
        return JSONResponse({"jsonrpc": "2.0", "id": _clean_id(parsed), "error": error})
    if (field := _int32_overflow(parsed)) is not None:
        # A2A's int32 fields (a2a.proto): the SDK's 0.3 translation raised
        # "Value out of range" as an internal error (-32603) for these.
        error = {"code": -32602, "message": f"params.{field} must fit in 32 bits"}
        return JSONResponse({"jsonrpc": "2.0", "id": _clean_id(parsed), "error": error})
    request.scope[_BODY] = parsed
    return None


# The body `parse_jsonrpc_body` parsed, in the request's ASGI scope under the
# gateway's own key: read by the front door, and by the SDK's dispatcher
# through `with_parsed_body`.
_BODY = "switchboard.jsonrpc_body"


def jsonrpc_body(request: Request) -> Any:
    """The JSON-RPC body `parse_jsonrpc_body` parsed (None if it did not
    parse, or was not parsed)."""
    return request.scope.get(_BODY)


def with_parsed_body(request: Request) -> Request:
    """``request`` as an SDK endpoint is handed it: its `json()` is the body
    parsed here, which the SDK's JSON-RPC dispatcher would parse again."""
    if _BODY not in request.scope:
        return request
    return _Parsed(request)


class _Parsed(Request):
    """The same request (scope, state, receive channel); its body read once,
    by the request it stands for."""

    def __init__(self, request: Request) -> None:
        super().__init__(request.scope, request.receive)
        self.stands_for = request

    async def body(self) -> bytes:
        return await self.stands_for.body()

    async def json(self) -> Any:
        return self.scope[_BODY]


_INT32_FIELDS = ("historyLength", "history_length", "pageSize", "page_size")


def _int32_overflow(parsed: Any) -> str | None:
    """The first of the request's int32 fields (in params, or its
    configuration) holding a number out of range, if any."""
    params = parsed.get("params") if isinstance(parsed, dict) else None
    if not isinstance(params, dict):
        return None
    places = [("", params)]
    configuration = params.get("configuration")
    if isinstance(configuration, dict):
        places.append(("configuration.", configuration))
    for prefix, place in places:
        for name in _INT32_FIELDS:
            value = place.get(name)
            if isinstance(value, bool) or not isinstance(value, int | float):
                continue
            if not -(2**31) <= value <= 2**31 - 1:
                return prefix + name
    return None


_SURROGATE = "the request body is not valid JSON: a string holds an unpaired UTF-16 surrogate"
# Where a surrogate can come from: a JSON escape, or its raw UTF-8 form (which
# `json.loads` decodes with surrogatepass). A well-formed pair matches too, so
# only a match is walked, and the walk decides.
_MAYBE_SURROGATE = re.compile(rb"\\u[dD][89a-fA-F]|\xed[\xa0-\xbf]")


def _has_lone_surrogate(value: Any) -> bool:
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                return True
        elif isinstance(item, dict):
            pending.extend(item.keys())
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)
    return False


def _clean_id(body: Any) -> str | int | None:
    """The request's id, when it can be written back."""
    rid = body.get("id") if isinstance(body, dict) else None
    if isinstance(rid, int) and not isinstance(rid, bool):
        return rid
    return rid if isinstance(rid, str) and not _has_lone_surrogate(rid) else None


def denial_response(denied: DelegationDenied, refuse: Callable[..., T]) -> T:
    """The refusal of a call the policy denied (403), a rate limit holds back
    (429) or a coordination rule does (409; 400 when the input names no
    entity the rules need), in the caller's binding (``refuse``)."""
    reasons = list(denied.decision.reasons)
    said = "delegation refused: " + "; ".join(reasons)
    if isinstance(denied, RateLimited):
        # RFC 6585 §4: 429 with Retry-After (RFC 9110 §10.2.3), the hint in
        # the error's data too for clients that only read the body.
        return refuse(
            429,
            said,
            {"reasons": reasons, "retry_after": denied.retry_after},
            headers={"Retry-After": str(denied.retry_after)},
        )
    if isinstance(denied, CoordinationRefused):
        # RFC 9110 §15.5.10: 409, the request conflicts with the entity's
        # state (a hold, a cooldown, another call in flight, a spent budget).
        data = {"reasons": reasons, "denial": "coordination", "rule": denied.rule}
        if denied.retry_after is None:
            return refuse(400, said, data)
        return refuse(
            409,
            said,
            {**data, "retry_after": denied.retry_after},
            headers={"Retry-After": str(denied.retry_after)},
        )
    return refuse(403, said, {"reasons": reasons})


# A2A 0.3 methods whose success is `"result": null`. The a2a-sdk's 0.3
# adapter dumps its answer with pydantic's `exclude_none`, which drops that
# member: `{"jsonrpc": "2.0", "id": 1}` answers nothing (JSON-RPC 2.0 §5,
# "result: This member is REQUIRED on success").
_NULL_RESULT_METHODS = frozenset({"tasks/pushNotificationConfig/delete"})


def with_null_result(request: Request, response: Response) -> Response:
    """``response`` to a parsed JSON-RPC request (`parse_jsonrpc_body`) of a
    `_NULL_RESULT_METHODS` method, its `"result": null` put back where the
    SDK left it out; any other answer as it is (not read: no cost)."""
    body = jsonrpc_body(request)
    if not (
        isinstance(body, dict)
        and body.get("method") in _NULL_RESULT_METHODS
        and isinstance(response, JSONResponse)
        and response.status_code == 200
    ):
        return response
    message = json.loads(bytes(response.body))
    if not isinstance(message, dict) or "result" in message or "error" in message:
        return response
    written_again = ("content-length", "content-type")
    kept = {k: v for k, v in response.headers.items() if k not in written_again}
    return JSONResponse({**message, "result": None}, headers=kept)

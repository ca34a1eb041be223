"""The one JSON reader of every door, and the answer to a document it
refuses, in the caller's protocol.

Python's `json` takes more than JSON, and more than the layers after it can
carry. Two gaps broke doors and left runs stuck:

* Depth. `json` parses some 1,000 levels, pydantic serialises about 255,
  PostgreSQL's `jsonb` and protobuf's `Struct` (100) other depths again. A
  run input 300 levels deep was stored and then made every listing that
  showed it answer 500 (issue 32).
* Numbers. `json` reads ``NaN``, ``Infinity`` and ``-Infinity`` (RFC 8259 §6
  has no such numbers) and ``1e999`` as ``inf``; protobuf's `Value` holds
  them and its JSON encoder then refuses them, so a data part holding one
  was a 500 at the A2A door, was passed as it was to an MCP upstream, and a
  flow step handing it on left its run "working" for good (issue 57). An
  integer past a double's range cannot become a `Value` at all.

So every JSON body a door takes is held, before anything parses it for real,
to one depth (`max_json_depth`) and to finite numbers a double can carry:
`BodyLimitMiddleware` asks `screen` of every body it has buffered anyway,
and what reads JSON itself (the REST API's documents, the console's forms,
a flow step's request) reads it with `read_json` or checks the value it
built with `check_value`. The screen costs two `count`s and a translated
copy for nearly every body; only a body that could hold such a number is
parsed by it.

The answer is the protocol the caller spoke: a JSON-RPC 2.0 error (both
protocol doors, `/a2a/...` and `/mcp`) with the request's id when it can be
read -- -32600 Invalid Request for a document too deep (-32700 Parse error
for one too deep to parse at all), -32602 Invalid params for a number that
is not one; A2A's HTTP+JSON binding (`/a2a/{id}/...`) an AIP-193 error,
`INVALID_ARGUMENT`; the REST API an RFC 9457 problem. All are HTTP 400 but
JSON-RPC's, which JSON-RPC over HTTP answers with 200.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

from gateway.http.jsonrpc_ids import INVALID_PARAMS, INVALID_REQUEST, PARSE_ERROR, request_id

# The default of `Settings.max_json_depth`: below protobuf's 100.
MAX_DEPTH = 64
# I-JSON (RFC 7493 §2.2): the integers a double carries exactly.
EXACT_INTS = 2**53

# Structural characters and the two that change how a string is read.
_TOKENS = re.compile(rb'[\[\]{}"\\]')


class JsonRefused(ValueError):
    """Text `read_json` does not take; ``kind`` names its problem type."""

    kind = "invalid-json"
    title = "The body is not JSON the gateway takes"
    jsonrpc_code = INVALID_REQUEST


class NotJson(JsonRefused):
    kind = "not-json"
    title = "The body is not JSON"
    jsonrpc_code = PARSE_ERROR


class TooDeep(JsonRefused):
    kind = "too-deep"
    title = "The JSON document is nested too deeply"
    jsonrpc_code = INVALID_REQUEST

    def __init__(self, max_depth: int) -> None:
        super().__init__(f"the JSON document nests deeper than {max_depth} levels")


class NotANumber(JsonRefused):
    """NaN, an infinity, or a number past what a double carries."""

    kind = "not-a-number"
    title = "A number in the JSON document is not one JSON can carry"
    jsonrpc_code = INVALID_PARAMS


def read_json(text: bytes | str, max_depth: int = MAX_DEPTH, *, exact_ints: bool = False) -> Any:
    """``text`` parsed, or `TooDeep`, `NotANumber` or `NotJson`.
    ``exact_ints``: integers past 2**53 are refused too (what becomes a
    protobuf `Value`, a double, and must come back as it went)."""
    body = text.encode("utf-8", "surrogatepass") if isinstance(text, str) else text
    if too_deep(body, max_depth):
        raise TooDeep(max_depth)
    try:
        return json.loads(
            body,
            parse_constant=_no_constant,
            parse_float=_finite,
            parse_int=_exact_int if exact_ints else _double_int,
        )
    except NotANumber:
        raise
    except (ValueError, RecursionError) as exc:
        raise NotJson(str(exc)) from None


def screen(body: bytes, max_depth: int) -> JsonRefused | None:
    """What is wrong with ``body`` for every door, if anything. Text that is
    not JSON is left to the door's own parser (it refuses it in its words)."""
    if too_deep(body, max_depth):
        return TooDeep(max_depth)
    if not _may_hold_a_non_number(body):
        return None
    try:
        read_json(body, max_depth)
    except NotANumber as refused:
        return refused
    except JsonRefused:
        return None
    return None


def check_value(value: Any, max_depth: int | None = MAX_DEPTH) -> None:
    """`read_json`'s rules for a value built some other way (a form's fields,
    a flow step's input): `TooDeep` or `NotANumber` (None: no depth rule)."""
    pending: list[tuple[Any, int]] = [(value, 0)]
    while pending:
        item, depth = pending.pop()
        if isinstance(item, dict | list):
            if max_depth is not None and depth + 1 > max_depth:
                raise TooDeep(max_depth)
            items = item.values() if isinstance(item, dict) else item
            pending.extend((inner, depth + 1) for inner in items)
        elif isinstance(item, float) and not math.isfinite(item):
            raise NotANumber(f"{item} is not a JSON number")
        elif isinstance(item, int) and not isinstance(item, bool):
            _double_int(item)


def too_deep(body: bytes, max_depth: int) -> bool:
    """Whether ``body``, read as JSON, nests arrays and objects more than
    ``max_depth`` levels. Text that is not JSON is left to its parser (it
    refuses it); brackets inside strings do not count. Costs two `count`s
    for a body with fewer than ``max_depth`` opening brackets, which is
    nearly every body."""
    if body.count(b"{") + body.count(b"[") <= max_depth:
        return False
    depth = 0
    in_string = False
    skip_at = -1
    for found in _TOKENS.finditer(body):
        at = found.start()
        if at == skip_at:
            continue  # the character after a backslash
        token = body[at]
        if in_string:
            if token == 0x5C:  # backslash: the next character is escaped
                skip_at = at + 1
            elif token == 0x22:  # quote
                in_string = False
        elif token == 0x22:
            in_string = True
        elif token in (0x7B, 0x5B):  # { [
            depth += 1
            if depth > max_depth:
                return True
        elif token in (0x7D, 0x5D):  # } ]
            depth -= 1
    return False


# Digits read as "0" and "E" as "e", all else kept: a number's text stays in
# one piece, and a finite JSON number past a double's range has at least
# 309 digits before its point, or an exponent: one of 3 digits or more, or
# one of at most 99 after 210 digits or more.
_DIGITS = bytes.maketrans(b"123456789E", b"000000000e")


def _may_hold_a_non_number(body: bytes) -> bool:
    """Whether ``body`` may hold a number `read_json` refuses (false alarms
    cost a parse). UTF-16 and UTF-32 text (which `json` reads from bytes)
    and a byte-order mark are always parsed: their digits are not bytes."""
    if b"\x00" in body[:4] or body[:1] in (b"\xef", b"\xfe", b"\xff"):
        return True
    if b"NaN" in body or b"Infinity" in body:
        return True
    shown = body.translate(_DIGITS)
    return b"0e000" in shown or b"0e+000" in shown or b"0" * 200 in shown


def _no_constant(name: str) -> Any:
    raise NotANumber(f"{name} is not a JSON number")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise NotANumber(f"{text[:20]} is not a JSON number a double can hold")
    return value


def _double_int(text: str | int) -> int:
    """An integer a double holds, if only roughly (past 2**1024 it holds none)."""
    value = int(text)
    try:
        float(value)
    except OverflowError:
        raise NotANumber(f"{str(text)[:20]}... is not a JSON number a double can hold") from None
    return value


def _exact_int(text: str) -> int:
    value = _double_int(text)
    if abs(value) > EXACT_INTS:
        raise NotANumber(f"{text[:20]} is beyond a double's exact integers (2**53)")
    return value


def refusal(path: str, body: bytes, refused: JsonRefused) -> tuple[int, str, bytes]:
    """The status, content type and body refusing ``body`` sent to ``path``."""
    detail = str(refused)
    if _jsonrpc_endpoint(path) or _is_jsonrpc(body):
        code = refused.jsonrpc_code
        try:
            json.loads(body)
        except (ValueError, RecursionError):
            # §5.1: the server could not parse the text at all (a nesting bomb).
            code = PARSE_ERROR
        said = {PARSE_ERROR: "Parse error", INVALID_REQUEST: "Invalid Request"}
        message = f"{said.get(code, 'Invalid params')}: {detail}"
        error = {"code": code, "message": message}
        answer = {"jsonrpc": "2.0", "id": request_id(body), "error": error}
        return 200, "application/json", json.dumps(answer).encode()
    if _http_json_method(path):
        # A2A 1.0 §11 (HTTP+JSON): errors are google.rpc.Status (AIP-193).
        status = {"error": {"code": 400, "status": "INVALID_ARGUMENT", "message": detail}}
        return 400, "application/json", json.dumps(status).encode()
    problem = {
        "type": f"urn:switchboard:problem:{refused.kind}",
        "title": refused.title,
        "status": 400,
        "detail": detail,
    }
    return 400, "application/problem+json", json.dumps(problem).encode()


def protocol_path(path: str) -> bool:
    """A path whose body a protocol door reads as JSON whatever its content
    type says: `/mcp`, and every path of the A2A door (JSON-RPC, HTTP+JSON,
    an agent's push notifications)."""
    return _jsonrpc_endpoint(path) or path.startswith("/a2a/")


def _jsonrpc_endpoint(path: str) -> bool:
    """`/mcp`, and an agent's JSON-RPC URL `/a2a/{id}` (or `/a2a/{id}/`, where
    the A2A TCK posts); `/a2a/{id}/message:send` and the like are HTTP+JSON."""
    if path == "/mcp" or path.startswith("/mcp/"):
        return True
    return path.startswith("/a2a/") and "/" not in path[len("/a2a/") :].rstrip("/")


def _http_json_method(path: str) -> bool:
    """An A2A HTTP+JSON method that takes a body (`/a2a/{id}/message:send`,
    `.../tasks/{id}:cancel`, `.../tasks/{id}/pushNotificationConfigs`, with a
    tenant or 0.3's `/v1` before them). Any other path under `/a2a/` (a path
    no route takes, the push relay) gets the gateway's own problem document."""
    if not path.startswith("/a2a/"):
        return False
    rest = path[len("/a2a/") :].partition("/")[2]
    return "message:" in rest or "tasks/" in rest


def _is_jsonrpc(body: bytes) -> bool:
    """A JSON-RPC 2.0 request, by its envelope member (read without parsing
    the document, which may be too deep for the parser)."""
    return body.lstrip()[:1] == b"{" and re.search(rb'"jsonrpc"\s*:\s*"2\.0"', body) is not None

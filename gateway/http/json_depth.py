"""How deeply a JSON document nests, read from its bytes, and the answer to
one that nests too deeply, in the caller's protocol.

Why a limit of our own: Python's `json` parses some 1,000 levels, pydantic
serialises about 255, PostgreSQL's `jsonb` and protobuf's `Struct` (100)
other depths again. A document that one layer accepts and a later one cannot
write back out was stored and then broke every listing that showed it (issue
32: one run input 300 levels deep made `GET /flows/{id}/runs` answer 500 for
everyone). So every body a door takes is held to one depth, far below all of
those, before anything parses it for real: `BodyLimitMiddleware` asks
`too_deep` of every JSON body it has buffered anyway.

The answer is the protocol the caller spoke: a JSON-RPC 2.0 error (both
protocol doors, `/a2a/...` and `/mcp`) with the request's id when it can be
read, -32600 Invalid Request (-32700 Parse error for a body too deep to
parse at all); A2A's HTTP+JSON binding (`/a2a/{id}/...`) an
AIP-193 error, `INVALID_ARGUMENT`; the REST API an RFC 9457 problem. All are
HTTP 400 but JSON-RPC's, which JSON-RPC over HTTP answers with 200.
"""

from __future__ import annotations

import json
import re

from gateway.http.jsonrpc_ids import INVALID_REQUEST, PARSE_ERROR, request_id

# Structural characters and the two that change how a string is read.
_TOKENS = re.compile(rb'[\[\]{}"\\]')


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


def refusal(path: str, body: bytes, max_depth: int) -> tuple[int, str, bytes]:
    """The status, content type and body refusing ``body`` sent to ``path``."""
    detail = f"the JSON document nests deeper than {max_depth} levels"
    if _jsonrpc_endpoint(path) or _is_jsonrpc(body):
        try:
            json.loads(body)
        except (ValueError, RecursionError):
            # §5.1: the server could not parse the text at all (a nesting bomb).
            error = {"code": PARSE_ERROR, "message": f"Parse error: {detail}"}
        else:
            error = {"code": INVALID_REQUEST, "message": f"Invalid Request: {detail}"}
        answer = {"jsonrpc": "2.0", "id": request_id(body), "error": error}
        return 200, "application/json", json.dumps(answer).encode()
    if _http_json_method(path):
        # A2A 1.0 §11 (HTTP+JSON): errors are google.rpc.Status (AIP-193).
        status = {"error": {"code": 400, "status": "INVALID_ARGUMENT", "message": detail}}
        return 400, "application/json", json.dumps(status).encode()
    problem = {
        "type": "urn:switchboard:problem:too-deep",
        "title": "The JSON document is nested too deeply",
        "status": 400,
        "detail": detail,
    }
    return 400, "application/problem+json", json.dumps(problem).encode()


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

"""Which A2A version a JSON-RPC request speaks, when its header does not say.

A2A 1.0 §3.2.6: a client sends `A2A-Version`; a server that gets none
assumes 0.3. The a2a-sdk does exactly that, so `SendMessage` without the
header was answered -32009 "version '0.3' is not supported" -- a method 0.3
does not even have (0.3 spells it `message/send`). A request can only mean
one version by its method's name: the 1.0 names are PascalCase, the 0.3 ones
`noun/verb`. So a request with no header and a 1.0 method name is read as
1.0 (the header is added before the SDK reads it); with a 0.3 name it stays
0.3, as the specification says.

A real mismatch -- a version not served, or a header that contradicts the
method -- is answered here, -32009 `VersionNotSupportedError`, saying which
header to send, instead of the SDK's message that names neither.
"""

from __future__ import annotations

from typing import Any

from a2a.utils.constants import VERSION_HEADER
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from adapters.semconv import A2A_METHODS

VERSION_NOT_SUPPORTED = -32009  # A2A 1.0 §5.4
SERVED = ("1.0", "0.3")


def version_of(request: Request, body: Any) -> Response | None:
    """Settle the version of the JSON-RPC request ``body`` (parsed): add
    `A2A-Version: 1.0` to a request that names a 1.0 method and no version;
    a refusal saying what to send for a version this method cannot be."""
    method = body.get("method") if isinstance(body, dict) else None
    if not isinstance(method, str):
        return None  # not a request the version could be read from: the SDK answers it
    said = request.headers.get(VERSION_HEADER)
    is_1_0 = method in A2A_METHODS  # A2A 1.0 §9: the methods, by their 1.0 names
    if said is None:
        if is_1_0:
            _add_header(request, "1.0")
        return None
    version = said.strip()
    if version not in SERVED:
        wanted = "1.0" if is_1_0 or "/" not in method else "0.3"
        return _refused(body, f"A2A version {version!r} is not served here", wanted)
    if version == "0.3" and is_1_0:
        return _refused(body, f"{method} is an A2A 1.0 method, but the request says 0.3", "1.0")
    return None


def _add_header(request: Request, version: str) -> None:
    request.scope["headers"] = [
        *request.scope["headers"],
        (VERSION_HEADER.lower().encode(), version.encode()),
    ]
    # Starlette keeps the headers it has read; read them again from the scope.
    request.__dict__.pop("_headers", None)


def _refused(body: dict[str, Any], problem: str, wanted: str) -> Response:
    request_id = body.get("id")
    if isinstance(request_id, bool) or not isinstance(request_id, str | int):
        request_id = None
    message = f"{problem}: send the header 'A2A-Version: {wanted}'"
    if wanted == "1.0":
        message += " with the 1.0 method names (SendMessage, GetTask, ...)"
    else:
        message += " with the 0.3 method names (message/send, tasks/get, ...)"
    error = {
        "code": VERSION_NOT_SUPPORTED,
        "message": message,
        "data": [
            {
                "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                "reason": "VERSION_NOT_SUPPORTED",
                "domain": "a2a-protocol.org",
                "metadata": {"supported": ",".join(SERVED), "send": wanted},
            }
        ],
    }
    return JSONResponse({"jsonrpc": "2.0", "id": request_id, "error": error})

"""One tool call on a REST API: the HTTP request its binding says, and the
answer as an MCP tool result (`adapters.openapi` owns the connection).

The binding (`registry.openapi_tools`) names each argument's place: a path
parameter is percent-encoded into its segment (RFC 3986 §3.3; a value of
dots only, which would climb out of the path, is refused), query
parameters go to the query string (a list as repeated names: OpenAPI's
default ``form``/``explode``), header parameters to headers, ``body`` as the
JSON body. The credential header is the gateway's (`UpstreamAuth`), set after
these, so no argument can replace it.

Answers (MCP "Tool Execution Errors": what the API said of the call is the
tool's result, not a protocol error):

* 2xx JSON: the JSON as text, and as ``structuredContent`` -- an object as
  it is, anything else under ``result`` when the tool's ``outputSchema`` says so;
* 2xx of another type: its text (bounded);
* 3xx (redirects are not followed), 4xx, and 5xx other than 502/503/504:
  ``isError`` with the status and the start of the body;
* 502/503/504 (RFC 9110 §15.6.3-5: the API is not there to answer) raise
  `UpstreamServerError`, like an MCP server's, so the federation's breaker
  counts them and an idempotent call is retried.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

import httpx2
import mcp_types as types

from adapters.errors import UpstreamServerError

EXCERPT_CHARS = 300  # of an error answer's body, in the tool error
MAX_TEXT_CHARS = 100_000  # of a non-JSON answer, in the result
UNAVAILABLE = frozenset({502, 503, 504})


class BadArguments(ValueError):
    """The call's arguments do not fit the operation (a tool error)."""


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        return json.dumps(value, separators=(",", ":"))
    return str(value)


def _segment(name: str, value: Any) -> str:
    text = _text(value)
    if text.strip(".") == "":
        # "", "." and ".." would change the path itself; percent-encoding the
        # dots does not help: a URL parser decodes them again (RFC 3986 §6.2.2.2)
        # before removing dot segments (§5.2.4).
        raise BadArguments(f"argument {name!r} cannot be {text!r} (a path segment)")
    return quote(text, safe="")


def request_of(
    base_url: str, binding: Mapping[str, Any], arguments: Mapping[str, Any] | None
) -> tuple[str, str, dict[str, Any]]:
    """(method, URL, httpx request options) for one call."""
    args = dict(arguments or {})
    path = str(binding["path"])
    query: list[tuple[str, str]] = []
    headers: dict[str, str] = {}
    for param in binding["params"]:
        name, where = param["name"], param["in"]
        if name not in args or args[name] is None:
            if where == "path":
                raise BadArguments(f"missing argument {name!r} (a path parameter)")
            continue
        value = args[name]
        if where == "path":
            path = path.replace("{" + name + "}", _segment(name, value))
        elif where == "query":
            values = value if isinstance(value, list) else [value]
            query.extend((name, _text(v)) for v in values)
        else:
            text = _text(value)
            if "\r" in text or "\n" in text:
                raise BadArguments(f"header {name!r} cannot contain a line break")
            headers[name] = text
    options: dict[str, Any] = {"params": query, "headers": headers}
    body = binding.get("body")
    if body and body in args:
        options["json"] = args[body]
    url = base_url.rstrip("/") + path
    if not path.startswith("/") or _origin(url) != _origin(base_url):
        # Only a path under the base URL: never another host, port or scheme
        # (a binding stored before paths were checked at registration).
        raise BadArguments(f"the operation's path {path!r} leaves the API's base URL")
    return str(binding["method"]), url, options


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = httpx2.URL(url)
    return parts.scheme, parts.host, parts.port


def _excerpt(response: httpx2.Response) -> str:
    text = response.content.decode("utf-8", errors="replace").strip()
    text = " ".join(text.split())
    return text[:EXCERPT_CHARS] + ("..." if len(text) > EXCERPT_CHARS else "")


def _is_json(response: httpx2.Response) -> bool:
    kind = response.headers.get("content-type", "").split(";")[0].strip().lower()
    return kind == "application/json" or kind.endswith("+json")


def error_result(text: str) -> types.CallToolResult:
    return types.CallToolResult(content=[types.TextContent(type="text", text=text)], is_error=True)


def result_of(
    server_id: str, response: httpx2.Response, binding: Mapping[str, Any]
) -> types.CallToolResult:
    """The answer as the tool's result (or `UpstreamServerError`, see above)."""
    status = response.status_code
    said = f"HTTP {status} {response.reason_phrase}".strip()
    if status in UNAVAILABLE:
        raise UpstreamServerError(
            f"REST API {server_id} answered {said}: {_excerpt(response)}", status
        )
    if status >= 300:  # a redirect is not followed (`checked_client`): not the answer
        return error_result(f"the API answered {said}: {_excerpt(response) or '(empty body)'}")
    if not response.content:
        return types.CallToolResult(content=[types.TextContent(type="text", text=said)])
    if _is_json(response):
        try:
            value = json.loads(response.content)
        except (UnicodeDecodeError, json.JSONDecodeError):
            return error_result(f"the API answered {said} with invalid JSON: {_excerpt(response)}")
        structured: dict[str, Any] | None = None
        if binding.get("wrap"):
            structured = {"result": value}
        elif isinstance(value, dict):
            structured = value
        text = json.dumps(value, ensure_ascii=False)
        return types.CallToolResult(
            content=[types.TextContent(type="text", text=text)], structured_content=structured
        )
    text = response.content.decode("utf-8", errors="replace")
    if len(text) > MAX_TEXT_CHARS:
        text = text[:MAX_TEXT_CHARS] + f"... (cut at {MAX_TEXT_CHARS} characters)"
    return types.CallToolResult(content=[types.TextContent(type="text", text=text)])

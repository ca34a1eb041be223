"""A REST API's operations as MCP tools, read from its OpenAPI 3.x document.

Each selected operation (OpenAPI 3.1 §4.8.10, "Operation Object") becomes one
tool definition, as an MCP server would list it, and one *binding* -- how a
call of the tool becomes an HTTP request -- which the gateway keeps beside the
server (never shown to callers):

* name: the ``operationId``, cleaned to the names the gateway offers as they
  stand (`registry.mcp_names.is_plain`: [A-Za-z0-9_-], at most 64, no
  ``__``); an operation without one is named ``{method}_{path}``;
* ``inputSchema``: an object with one property per path, query and header
  parameter (§4.8.12) and, when the operation takes a JSON body (§4.8.13),
  one ``body`` property with the body's schema;
* ``description``: the summary and the description;
* ``outputSchema``: the JSON schema of the first 2xx answer; an object's as
  it is, anything else under ``result`` (MCP 2025-06-18, "Structured
  Content": structured content is an object);
* annotations from the method (RFC 9110 §9.2: GET/HEAD are safe, PUT and
  DELETE idempotent): the federation retries only idempotent calls.

The document is refused (`OpenApiRefused`, with the reason) when it is not
OpenAPI 3.x, too large, its `$ref`s cannot be inlined (`registry.openapi_refs`),
or the selection names no operation or one it does not have.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from registry.mcp_names import MAX_NAME, SEPARATOR, is_plain, reserved
from registry.openapi_refs import OpenApiRefused, inlined

MAX_DOCUMENT_BYTES = 2 * 1024 * 1024  # the document as compact JSON
MAX_OPERATIONS = 256  # tools one document may become
METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
SAFE = frozenset({"get", "head", "options", "trace"})
IDEMPOTENT = SAFE | {"put", "delete"}
# OpenAPI 3.1 §4.8.12.1: such header parameters "SHALL be ignored"; the rest
# would let a caller forge what the gateway's HTTP client owns.
IGNORED_HEADERS = frozenset(
    {
        "accept",
        "content-type",
        "authorization",
        "cookie",
        "host",
        "content-length",
        "transfer-encoding",
        "connection",
        "proxy-authorization",
    }
)
BODY = "body"
_UNSAFE = re.compile(r"[^A-Za-z0-9_-]+")


@dataclass(frozen=True)
class OpenApiTools:
    """What a document became: the tools, and how each is called."""

    title: str
    version: str
    servers: tuple[str, ...]  # the document's server URLs, as written
    tools: list[dict[str, Any]]  # MCP tool definitions
    bindings: dict[str, dict[str, Any]]  # tool name -> how to call it


def checked_document(document: Any) -> dict[str, Any]:
    """The document, if it is OpenAPI 3.x of bounded size (else refused)."""
    if not isinstance(document, Mapping):
        raise OpenApiRefused("an OpenAPI document is a JSON object")
    try:
        # allow_nan=False: NaN and infinities are no JSON (a YAML document's
        # .nan, .inf), and would be stored in the tools' schemas.
        size = len(json.dumps(document, separators=(",", ":"), allow_nan=False))
    except RecursionError:
        raise OpenApiRefused("the document nests too deeply to be read") from None
    except (ValueError, TypeError, OverflowError) as exc:
        # A YAML date or timestamp (an unquoted `2024-01-01`), a non-finite number.
        raise OpenApiRefused(f"the document holds a value JSON cannot carry: {exc}") from None
    if size > MAX_DOCUMENT_BYTES:
        raise OpenApiRefused(f"the document is {size} bytes, over {MAX_DOCUMENT_BYTES}")
    version = document.get("openapi")
    if not isinstance(version, str) or not re.fullmatch(r"3\.\d+\.\d+(-.+)?", version):
        found = f"openapi: {version!r}" if "openapi" in document else "no openapi field"
        if "swagger" in document:
            found = f"swagger: {document['swagger']!r} (Swagger 2.0)"
        raise OpenApiRefused(f"not an OpenAPI 3.x document ({found})")
    if not isinstance(document.get("paths", {}), Mapping):
        raise OpenApiRefused("paths must be an object")
    return dict(document)


def tools_of(
    document: Any, *, operations: Sequence[str] = (), tag: str | None = None
) -> OpenApiTools:
    """The selected operations (by ``operationId``, or by ``tag``; all when
    neither is given) as tools. Refused when the selection is empty."""
    whole = inlined(checked_document(document))
    found = list(_operations(whole))
    wanted = set(operations)
    known = {op_id for op_id, *_ in found}
    if missing := sorted(wanted - known):
        raise OpenApiRefused(f"no operation {', '.join(missing)} in the document")
    chosen = [
        item
        for item in found
        if (not wanted or item[0] in wanted) and (tag is None or tag in item[3].get("tags", ()))
    ]
    if not chosen:
        raise OpenApiRefused(
            f"no operation is tagged {tag!r}" if tag else "the document has no operations"
        )
    if len(chosen) > MAX_OPERATIONS:
        raise OpenApiRefused(
            f"{len(chosen)} operations selected, over {MAX_OPERATIONS}: "
            "choose some (operations) or a tag"
        )
    tools: list[dict[str, Any]] = []
    bindings: dict[str, dict[str, Any]] = {}
    for op_id, method, path, operation, shared in chosen:
        name = _free(tool_name(op_id), bindings)
        tool, binding = _tool(name, method, path, operation, shared)
        tools.append(tool)
        bindings[name] = binding
    info = whole.get("info")
    info = info if isinstance(info, Mapping) else {}
    servers = whole.get("servers")
    servers = servers if isinstance(servers, list) else []
    return OpenApiTools(
        title=str(info.get("title", "")),
        version=str(info.get("version", "")),
        servers=tuple(str(s["url"]) for s in servers if isinstance(s, Mapping) and "url" in s),
        tools=tools,
        bindings=bindings,
    )


def tool_name(operation_id: str) -> str:
    """``operationId`` cleaned to a name the gateway offers as it stands."""
    clean = _UNSAFE.sub("_", operation_id)
    while SEPARATOR in clean:
        clean = clean.replace(SEPARATOR, "_")
    clean = clean.strip("_")[:MAX_NAME].strip("_") or "operation"
    return clean if reserved(clean) is None else f"op_{clean}"[:MAX_NAME]


def _free(name: str, taken: Mapping[str, Any]) -> str:
    candidate, n = name, 1
    while candidate in taken:
        n += 1
        suffix = f"_{n}"
        candidate = name[: MAX_NAME - len(suffix)] + suffix
    assert is_plain(candidate)
    return candidate


def _operations(document: Mapping[str, Any]) -> Any:
    """(operationId, method, path, operation, path-level parameters) of each operation."""
    for path, item in document.get("paths", {}).items():
        if not isinstance(item, Mapping):
            raise OpenApiRefused(f"path {path!r} is not a Path Item Object")
        shared = item.get("parameters", [])
        for method in METHODS:
            operation = item.get(method)
            if operation is None:
                continue
            if not isinstance(operation, Mapping):
                raise OpenApiRefused(f"{method.upper()} {path} is not an Operation Object")
            if not str(path).startswith("/"):
                # OpenAPI 3.1 §4.8.8.1: "The field name MUST begin with a forward
                # slash". Joined to the base URL, "@host/x" or ".host/x" would
                # name another host, which would get the call's credential.
                raise OpenApiRefused(f"path {path!r} does not begin with /")
            op_id = operation.get("operationId") or f"{method}_{path}"
            yield str(op_id), method, str(path), operation, shared


def _tool(
    name: str, method: str, path: str, operation: Mapping[str, Any], shared: Any
) -> tuple[dict[str, Any], dict[str, Any]]:
    properties: dict[str, Any] = {}
    required: list[str] = []
    params: list[dict[str, str]] = []
    for param in _parameters(shared, operation.get("parameters", []), f"{method} {path}"):
        where, pname = param["in"], str(param["name"])
        if where == "cookie" or (where == "header" and pname.lower() in IGNORED_HEADERS):
            continue  # the gateway sends no caller's cookies, nor these headers
        if pname in properties:
            raise OpenApiRefused(f"{method.upper()} {path}: two parameters named {pname!r}")
        schema = dict(param.get("schema") or {})
        if "description" in param and "description" not in schema:
            schema["description"] = param["description"]
        properties[pname] = schema
        params.append({"name": pname, "in": where})
        if param.get("required") or where == "path":
            required.append(pname)
    body = _json_body(operation.get("requestBody"))
    body_key = None
    if body is not None:
        body_key = BODY if BODY not in properties else "request_body"
        properties[body_key] = body[0]
        if body[1]:
            required.append(body_key)
    input_schema: dict[str, Any] = {"type": "object", "properties": properties}
    if required:
        input_schema["required"] = required
    output, wrap = _output_schema(operation.get("responses"))
    summary, description = operation.get("summary"), operation.get("description")
    text = "\n\n".join(str(t) for t in (summary, description) if t) or f"{method.upper()} {path}"
    tool: dict[str, Any] = {
        "name": name,
        "description": text,
        "inputSchema": input_schema,
        "annotations": {
            "readOnlyHint": method in SAFE,
            "idempotentHint": method in IDEMPOTENT,
            "destructiveHint": method == "delete",
            "openWorldHint": True,
        },
    }
    if summary:
        tool["title"] = str(summary)
    if output is not None:
        tool["outputSchema"] = output
    binding = {"method": method.upper(), "path": path, "params": params, "body": body_key}
    return tool, binding | {"wrap": wrap}


def _parameters(shared: Any, own: Any, where: str) -> list[Mapping[str, Any]]:
    """Path-level parameters, overridden by the operation's own (§4.8.10)."""
    merged: dict[tuple[str, str], Mapping[str, Any]] = {}
    for param in [*(shared or []), *(own or [])]:
        if not isinstance(param, Mapping) or not isinstance(param.get("name"), str):
            raise OpenApiRefused(f"{where}: a parameter without a name")
        if param.get("in") not in ("path", "query", "header", "cookie"):
            raise OpenApiRefused(f"{where}: parameter {param['name']!r} has no valid 'in'")
        merged[(param["name"], param["in"])] = param
    return list(merged.values())


def _json_media(content: Any) -> Mapping[str, Any] | None:
    if not isinstance(content, Mapping):
        return None
    for media, value in content.items():
        kind = str(media).split(";")[0].strip().lower()
        if (kind == "application/json" or kind.endswith("+json")) and isinstance(value, Mapping):
            return value
    return None


def _json_body(request_body: Any) -> tuple[dict[str, Any], bool] | None:
    if not isinstance(request_body, Mapping):
        return None
    media = _json_media(request_body.get("content"))
    if media is None:
        return None  # only JSON bodies become a tool's input
    return dict(media.get("schema") or {}), bool(request_body.get("required"))


def _output_schema(responses: Any) -> tuple[dict[str, Any] | None, bool]:
    """(outputSchema, whether the answer is wrapped under ``result``)."""
    if not isinstance(responses, Mapping):
        return None, False
    codes = sorted(str(c) for c in responses if str(c).startswith("2"))
    for code in codes:
        response = responses[code] if code in responses else responses.get(int(code))
        media = _json_media(response.get("content")) if isinstance(response, Mapping) else None
        schema = media.get("schema") if media is not None else None
        if not isinstance(schema, Mapping) or not schema:
            continue
        if schema.get("type") == "object" or ("properties" in schema and "type" not in schema):
            return dict(schema), False
        return {"type": "object", "properties": {"result": dict(schema)}}, True
    return None, False

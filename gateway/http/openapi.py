"""The REST API's OpenAPI document, made to say what the API really does.

FastAPI's own document knows nothing of the gateway's bearer authentication
(a plain dependency, not one of FastAPI's security classes) and describes
every error as its `HTTPValidationError`, which the gateway never sends: its
errors are RFC 9457 problem documents (`gateway.http.problems`). Here the
document gets the bearer scheme on every operation that authenticates, the
problem document as the body of every error it may answer, and the form body
and RFC 6749 error shape of `/oauth/token`. A client generated from it, and
the schema-driven fuzzer in tests/fuzz, then read the truth.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from gateway.http.problems import PROBLEM_JSON

PROBLEM_SCHEMA: dict[str, Any] = {
    "title": "Problem",
    "description": "An RFC 9457 problem document.",
    "type": "object",
    "required": ["type", "title", "status"],
    "properties": {
        "type": {"type": "string", "description": "urn:switchboard:problem:<slug>"},
        "title": {"type": "string"},
        "status": {"type": "integer", "minimum": 400, "maximum": 599},
        "detail": {"type": "string"},
        "instance": {"type": "string"},
        "errors": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["message"],
                "properties": {
                    "field": {"type": "string", "description": "the request field at fault"},
                    "line": {
                        "type": "integer",
                        "description": "the line at fault of a document sent as text (a policy)",
                    },
                    "message": {"type": "string"},
                },
            },
        },
    },
}
OAUTH_ERROR_SCHEMA: dict[str, Any] = {
    "title": "OAuthError",
    "description": "An RFC 6749 §5.2 error response.",
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {"type": "string"},
        "error_description": {"type": ["string", "null"]},
    },
}
TOKEN_RESPONSE_SCHEMA: dict[str, Any] = {
    "title": "TokenResponse",
    "description": "An RFC 8693 §2.2.1 token exchange response.",
    "type": "object",
    "required": ["access_token", "issued_token_type", "token_type"],
    "properties": {
        "access_token": {"type": "string"},
        "issued_token_type": {"type": "string"},
        "token_type": {"type": "string"},
        "expires_in": {"type": "integer"},
        "scope": {"type": "string"},
    },
}
TOKEN_REQUEST_SCHEMA: dict[str, Any] = {
    "title": "TokenExchangeRequest",
    "description": "RFC 8693 §2.1 parameters; the client authenticates per RFC 6749 §2.3.",
    "type": "object",
    "required": ["grant_type", "subject_token", "subject_token_type"],
    "properties": {
        "grant_type": {"type": "string"},
        "subject_token": {"type": "string"},
        "subject_token_type": {"type": "string"},
        "actor_token": {"type": "string"},
        "actor_token_type": {"type": "string"},
        "resource": {"type": "string"},
        "audience": {"type": "string"},
        "scope": {"type": "string"},
        "requested_token_type": {"type": "string"},
        "client_id": {"type": "string"},
        "client_secret": {"type": "string"},
        "client_assertion": {"type": "string"},
        "client_assertion_type": {"type": "string"},
    },
}
TOKEN_PATH = "/oauth/token"  # noqa: S105 (a path, not a secret)
# The document's introduction: how to authenticate, and the two protocol doors
# that are not REST operations (their own specifications describe them).
DESCRIPTION = """\
The REST API of Switchboard's registry, approvals, audit, policies and flows.

**Authorize** with a bearer access token (RFC 6750) from an issuer the gateway
trusts; a `--dev` gateway also takes `switchboard token issue --sub alice
--scope switchboard:admin`. The web console is at [/ui](/ui).

**The protocol doors** are not REST operations, so they are not listed below:

* `/a2a/{agent_id}` -- every registered agent as an A2A agent: its card at
  `GET /a2a/{agent_id}/.well-known/agent-card.json`, JSON-RPC at
  `POST /a2a/{agent_id}`, HTTP+JSON at `/a2a/{agent_id}/message:send`,
  `/a2a/{agent_id}/tasks/{id}`, ... (A2A 1.0; 0.3 clients too). The same
  bearer token. Which agents a token may use: `GET /agents`. The gateway's
  own card: [`/.well-known/agent-card.json`](/.well-known/agent-card.json).
  See docs/a2a.md.
* `/mcp` -- the gateway's own MCP server (Streamable HTTP, revisions
  2026-07-28 and 2025-11-25): agents' skills and the federated MCP servers'
  tools, filtered per user. Metadata at
  [`/.well-known/oauth-protected-resource/mcp`](/.well-known/oauth-protected-resource/mcp).
  See docs/mcp.md.
"""


def install(app: FastAPI) -> None:
    """Serve `document(app)` as the app's OpenAPI document (built once)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = document(app)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def document(app: FastAPI) -> dict[str, Any]:
    doc = get_openapi(
        title=app.title,
        version=app.version,
        summary=app.summary,
        description=app.description,
        routes=app.routes,
    )
    schemas = doc.setdefault("components", {}).setdefault("schemas", {})
    schemas["Problem"] = PROBLEM_SCHEMA
    schemas.pop("HTTPValidationError", None)
    schemas.pop("ValidationError", None)
    for path, operations in doc["paths"].items():
        for method, operation in operations.items():
            if path == TOKEN_PATH and method == "post":
                _describe_token_endpoint(operation)
            else:
                _describe(operation)
    return doc


def _problem(description: str) -> dict[str, Any]:
    ref = {"$ref": "#/components/schemas/Problem"}
    return {"description": description, "content": {PROBLEM_JSON: {"schema": ref}}}


def _describe(operation: dict[str, Any]) -> None:
    """The errors ``operation`` may answer, each a problem document. Its
    security comes from FastAPI (`gateway.http.auth.BEARER`)."""
    responses: dict[str, Any] = operation.setdefault("responses", {})
    parameters = operation.get("parameters", [])
    has_body = "requestBody" in operation
    if operation.get("security"):
        responses["401"] = _problem("No token, or a token that is not valid here")
        responses["403"] = _problem("The token lacks a scope this operation needs")
    if has_body:
        responses["400"] = _problem("The body is not valid JSON, or is nested too deeply")
        responses["413"] = _problem("The body is larger than the gateway accepts")
    if any(p.get("in") == "path" for p in parameters):
        responses["404"] = _problem("No such record (or one the caller may not see)")
    if parameters or has_body:
        responses["422"] = _problem("The request does not match the expected shape")
    for status, response in responses.items():
        # An error a route declares itself (e.g. a webhook's 401 for a bad
        # signature) is answered as a problem document like every other.
        if status[0] in "45" and "content" not in response:
            responses[status] = _problem(response.get("description", "An error"))
    # Anything else (a conflict, an upstream's failure, the database's
    # absence) is a problem document too.
    responses["default"] = _problem("Any other error")


def _describe_token_endpoint(operation: dict[str, Any]) -> None:
    """`/oauth/token` reads a form and answers in RFC 6749's own shapes."""
    operation["requestBody"] = {
        "required": True,
        "content": {"application/x-www-form-urlencoded": {"schema": TOKEN_REQUEST_SCHEMA}},
    }
    oauth_error = {"application/json": {"schema": OAUTH_ERROR_SCHEMA}}
    operation["responses"] = {
        "200": {
            "description": "The issued token",
            "content": {"application/json": {"schema": TOKEN_RESPONSE_SCHEMA}},
        },
        "400": {"description": "An RFC 6749 §5.2 error", "content": oauth_error},
        "401": {"description": "The client failed to authenticate", "content": oauth_error},
        "413": _problem("The body is larger than the gateway accepts"),
        "default": _problem("Any other error"),
    }

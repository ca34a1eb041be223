"""Authorization for the gateway's MCP endpoint (MCP 2025-11-25 "Authorization").

`McpAuth` wraps the SDK's Streamable HTTP app as pure ASGI (a
`BaseHTTPMiddleware` would break SSE and context variables). Before the SDK
sees a request it:

1. verifies the bearer token with the gateway's own verifier -- signature,
   issuer, expiry and audience, which is the gateway itself or its `/mcp`
   resource (RFC 8707; the MCP spec has clients ask for the latter);
2. answers a missing or bad token with 401 and
   `WWW-Authenticate: Bearer resource_metadata=".../.well-known/oauth-protected-resource/mcp"`
   (RFC 9728 §5.1), and a token without `mcp_required_scopes` with 403
   `error="insufficient_scope"` naming the scopes (RFC 6750 §3.1);
3. puts the caller where the handlers find it: ``scope["user"]`` as the SDK's
   `AuthenticatedUser` -- which makes the SDK bind a 2025-11-25 session to its
   user (another user's `Mcp-Session-Id` is "session not found") and bind
   sealed `requestState` to the principal -- and the gateway's `Caller` under
   `CALLER_KEY` and in a context variable.
"""

from __future__ import annotations

import contextvars
from collections.abc import Iterable

from mcp.server.auth.middleware.auth_context import auth_context_var
from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
from mcp.server.auth.provider import AccessToken
from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from gateway.delegation.pipeline import Caller
from gateway.http.auth import (
    PROTECTED_RESOURCE_PATH,
    authenticate,
    bearer_token,
    challenge,
    request_auth,
)
from gateway.http.problems import Problem, problem_response
from gateway.mcp.sets import set_path_name
from policies.api_keys import looks_like_key
from policies.tokens import Principal

MCP_PATH = "/mcp"
MCP_METADATA_PATH = PROTECTED_RESOURCE_PATH + MCP_PATH
CALLER_KEY = "switchboard.caller"

current_caller: contextvars.ContextVar[Caller | None] = contextvars.ContextVar(
    "switchboard_mcp_caller", default=None
)


def mcp_resource(request: Request, path: str = MCP_PATH) -> str:
    """The RFC 8707 resource identifier of the MCP endpoint (``path``: a
    virtual server's, `/mcp/{name}`)."""
    return request_auth(request).settings.effective_resource_id + path


def resource_path(path: str) -> str:
    """The MCP resource a request is for: `/mcp`, or a virtual server's
    `/mcp/{name}` (`gateway.mcp.sets`), each a protected resource of its own
    (RFC 9728: its metadata at the well-known path with its own appended)."""
    return path if set_path_name(path) is not None else MCP_PATH


def access_token(principal: Principal, token: str) -> AccessToken:
    """The SDK's view of the caller. Its session owner and request-state binding
    are (client, issuer, subject), so subject and issuer must both be set."""
    return AccessToken(
        token=token,
        client_id=principal.client_id or principal.subject,
        subject=principal.subject,
        scopes=sorted(principal.scopes),
        expires_at=principal.expires_at or None,
        claims={"iss": principal.issuer},
    )


class McpAuth:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        path = resource_path(scope.get("path", ""))
        try:
            principal = await self._authorize(request, path)
        except Problem as problem:
            await problem_response(problem, path)(scope, receive, send)
            return
        token = bearer_token(request, path)
        # An API key is no token of the user's identity provider: it is never
        # exchanged there on their behalf (`gateway.connections.on_behalf`).
        user = AuthenticatedUser(access_token(principal, "" if looks_like_key(token) else token))
        caller = Caller.user(principal)
        scope["user"] = user
        scope[CALLER_KEY] = caller
        # The SDK copies the sender's context into the handler's task, so these
        # reach the handlers on 2025-11-25 sessions too.
        caller_token = current_caller.set(caller)
        user_token = auth_context_var.set(user)
        try:
            await self.app(scope, receive, send)
        finally:
            auth_context_var.reset(user_token)
            current_caller.reset(caller_token)

    async def _authorize(self, request: Request, path: str) -> Principal:
        # A virtual server also takes tokens for `/mcp` itself: it offers a
        # part of what they are good for. A token for a virtual server is
        # good for that one only (RFC 8707).
        # The endpoint's own audience first: the one its clients ask for.
        audiences = tuple(dict.fromkeys((mcp_resource(request, path), mcp_resource(request))))
        principal = await authenticate(request, resource_path=path, audiences=audiences)
        required = request_auth(request).settings.mcp_required_scopes
        if missing_mcp_scopes(required, principal):
            wanted = " ".join(sorted(required))
            raise Problem(
                403,
                "insufficient-scope",
                "Insufficient scope",
                f"the MCP endpoint needs the scopes {wanted}",
                headers={
                    "WWW-Authenticate": challenge(
                        request,
                        "insufficient_scope",
                        f"requires {wanted}",
                        wanted,
                        resource_path=path,
                    )
                },
            )
        return principal


def missing_mcp_scopes(required: Iterable[str], principal: Principal) -> list[str]:
    """The scopes `mcp_required_scopes` asks of every caller of `/mcp` that
    ``principal`` lacks: the endpoint's own condition, before any policy
    (also what the console's playground checks before it calls a tool)."""
    return sorted(set(required) - principal.scopes)

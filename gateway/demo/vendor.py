"""A third-party "vendor" whose MCP server trusts only its own OAuth authorization server
(`switchboard demo --scenario consent`, and the connected-accounts tests).

Both are the official SDK's server-side auth pieces, served on one port:
`create_auth_routes` (RFC 8414 metadata, /authorize, /token with PKCE S256,
RFC 7591 /register, RFC 7009 /revoke) over an in-memory
`OAuthAuthorizationServerProvider` (`gateway.demo.vendor_as`), and an
`MCPServer` at ``{url}/mcp`` that
verifies bearer tokens against what that AS issued, answers 401 with
``WWW-Authenticate: Bearer ... resource_metadata=...`` and serves RFC 9728
metadata at ``/.well-known/oauth-protected-resource/mcp``.

What this module adds: the vendor's "browser login" (a cookie from `login()`;
/authorize without one answers 401), the RFC 9207 ``iss`` in the redirect,
refresh-token rotation, metadata that honours `pkce_methods`, and records of
every request for the tests. A token issued for another RFC 8707 resource is
refused at /mcp; one issued with no resource is accepted. `write_note` without
scope ``notes:write`` is a tool error (a `ToolError`: ``is_error``), recorded in
`calls` all the same. At ``{url}/agent/`` an A2A agent trusts the same logins
(`gateway.demo.vendor_agent`), and at ``{url}/llm/v1`` an OpenAI-compatible
chat API (`gateway.demo.vendor_llm`). Whatever `pkce_methods` advertises, /authorize takes only
S256 (the SDK's handler) and /token always checks the verifier.
"""

from __future__ import annotations

import base64
import contextlib
import html
import json
import secrets
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, unquote

from mcp.server.auth.middleware.auth_context import get_access_token
from mcp.server.auth.provider import (
    AccessToken,
    RefreshToken,
)
from mcp.server.auth.routes import build_metadata, create_auth_routes
from mcp.server.auth.settings import AuthSettings, ClientRegistrationOptions, RevocationOptions
from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.shared.auth import OAuthClientInformationFull
from pydantic import AnyUrl
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, RedirectResponse
from starlette.routing import Mount
from starlette.types import ASGIApp, Receive, Scope, Send

from gateway.demo.servers import Server, bound_socket
from gateway.demo.vendor_agent import OPEN_PATH, VendorSide, agent_app, read_body
from gateway.demo.vendor_agent import PATH as AGENT_PATH
from gateway.demo.vendor_as import Provider, Verifier, logged_in
from gateway.demo.vendor_llm import METADATA_PATH as LLM_METADATA_PATH
from gateway.demo.vendor_llm import PATH as LLM_PATH
from gateway.demo.vendor_llm import llm_app

SESSION_COOKIE = "vendor_session"
AS_METADATA = "/.well-known/oauth-authorization-server"
AS_PATHS = {AS_METADATA, "/authorize", "/token", "/register", "/revoke"}


@dataclass
class Vendor:
    access_seconds: int = 3600
    scopes: tuple[str, ...] = ("notes:read", "notes:write")
    pkce_methods: tuple[str, ...] = ("S256",)  # () omits code_challenge_methods_supported
    dynamic_registration: bool = True
    send_iss: bool = True
    # (issuer, public JWK) of an identity provider whose ID-JAGs the
    # authorization server takes (SEP-990); None: the grant is not offered.
    trusted_idp: tuple[str, dict[str, Any]] | None = None
    assertions: list[dict[str, Any]] = field(default_factory=list)
    # write_note without notes:write: HTTP 403 insufficient_scope naming the
    # scopes it needs (a step-up challenge), not a tool error.
    scope_challenge: bool = False
    url: str = ""
    mcp_url: str = ""
    issuer: str = ""
    authorize_requests: list[dict[str, str]] = field(default_factory=list)
    token_requests: list[dict[str, str]] = field(default_factory=list)
    registrations: list[dict[str, Any]] = field(default_factory=list)
    revoked: list[str] = field(default_factory=list)
    calls: list[dict[str, Any]] = field(default_factory=list)
    sessions: dict[str, str] = field(default_factory=dict)  # cookie -> vendor user
    provider: Provider = field(init=False, repr=False)
    thread: Server | None = None

    def __post_init__(self) -> None:
        self.provider = Provider(self)

    # -- the test's handles --------------------------------------------------------

    def start(self, port: int | None = None) -> Vendor:
        """Serve on ``port`` of 127.0.0.1 (None: any free one)."""
        server = Server("vendor", bound_socket(port=port or 0))
        self.thread = server.start(self.app(server.url))
        return self

    def stop(self) -> None:
        if self.thread is not None:
            self.thread.stop()
            self.thread = None

    def __enter__(self) -> Vendor:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def login(self, vendor_user: str) -> dict[str, str]:
        """Cookies that make /authorize consent at once as ``vendor_user``."""
        cookie = secrets.token_urlsafe(16)
        self.sessions[cookie] = vendor_user
        return {SESSION_COOKIE: cookie}

    def preregister(
        self,
        client_id: str,
        client_secret: str | None,
        redirect_uris: list[str],
        *,
        auth_method: str = "client_secret_post",
        grant_types: tuple[str, ...] = ("authorization_code", "refresh_token"),
    ) -> None:
        """A client registered out of band; with no secret it is public (auth method none)."""
        self.provider.clients[client_id] = OAuthClientInformationFull(
            client_id=client_id,
            client_secret=client_secret,
            redirect_uris=[AnyUrl(uri) for uri in redirect_uris],
            token_endpoint_auth_method=auth_method if client_secret else "none",
            grant_types=list(grant_types),
            response_types=["code"],
            scope=" ".join(self.scopes),
        )

    def expire_all(self) -> None:
        """Every access token issued so far is now expired (its refresh token still works)."""
        for token in self.provider.access.values():
            token.expires_at = int(time.time()) - 10

    # -- the servers -----------------------------------------------------------------

    def _registration(self) -> ClientRegistrationOptions:
        return ClientRegistrationOptions(
            enabled=self.dynamic_registration,
            valid_scopes=list(self.scopes),
            default_scopes=list(self.scopes),
        )

    def _metadata(self) -> dict[str, Any]:
        """The SDK's RFC 8414 document, with this vendor's PKCE methods."""
        settings = AuthSettings(issuer_url=self.issuer, resource_server_url=None)
        document = build_metadata(
            settings.issuer_url,
            None,
            self._registration(),
            RevocationOptions(enabled=True),
            supports_identity_assertion=self.trusted_idp is not None,
        ).model_dump(mode="json", exclude_none=True)
        document.pop("code_challenge_methods_supported", None)
        if self.pkce_methods:
            document["code_challenge_methods_supported"] = list(self.pkce_methods)
        return document

    def _agent_side(self) -> VendorSide:
        return VendorSide(self.url, self.scopes, self.provider.access, self.calls)

    def app(self, url: str) -> ASGIApp:
        self.url, self.issuer, self.mcp_url = url, url, url + "/mcp"
        auth = AuthSettings(
            issuer_url=self.issuer,
            resource_server_url=self.mcp_url,
            validate_token_resource=False,  # Verifier checks the resource itself
        )
        server: MCPServer[Any] = MCPServer(
            "vendor", token_verifier=Verifier(self.provider), auth=auth
        )
        server.add_tool(self.whoami, description="Who the bearer token speaks for.")
        server.add_tool(self.write_note, description="Write a note (needs notes:write).")
        mcp_app = server.streamable_http_app(stateless_http=True)
        as_app = Starlette(
            routes=create_auth_routes(
                self.provider,
                auth.issuer_url,
                client_registration_options=self._registration(),
                revocation_options=RevocationOptions(enabled=True),
                identity_assertion_enabled=self.trusted_idp is not None,
            )
        )

        side = self._agent_side()
        agent = Starlette(
            routes=[
                Mount(AGENT_PATH, app=agent_app(side)),
                Mount(OPEN_PATH, app=agent_app(side, OPEN_PATH)),
            ]
        )

        llm = llm_app(side)

        async def app(scope: Scope, receive: Receive, send: Send) -> None:
            path = scope.get("path", "")
            if path.startswith((AGENT_PATH + "/", OPEN_PATH + "/")):
                await agent(scope, receive, send)
            elif scope["type"] == "http" and (
                path == LLM_PATH or path.startswith((LLM_PATH + "/", LLM_METADATA_PATH))
            ):
                await llm(scope, receive, send)
            elif self.scope_challenge and path == "/mcp" and scope.get("method") == "POST":
                await self._challenged(mcp_app, scope, receive, send)
            elif path == "/login" and scope["type"] == "http":
                await self._login(Request(scope))(scope, receive, send)
            elif scope["type"] != "http" or path not in AS_PATHS:
                await mcp_app(scope, receive, send)  # /mcp, RFC 9728 metadata, lifespan
            elif path == AS_METADATA:
                await JSONResponse(self._metadata())(scope, receive, send)
            elif path == "/authorize":
                await self._authorize(as_app, scope, receive, send)
            else:
                await self._recorded(as_app, scope, receive, send)

        return app

    async def _authorize(self, as_app: ASGIApp, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope)
        self.authorize_requests.append(dict(request.query_params))
        user = self.sessions.get(request.cookies.get(SESSION_COOKIE, ""))
        if user is None:
            # Still a 401 for a program; a person's browser shows the login.
            here = html.escape(request.url.path + "?" + request.url.query, quote=True)
            page = (
                "<!doctype html><title>Vendor login</title><p>not logged in at the vendor</p>"
                '<form action="/login" method="get"><label>user <input name="user" '
                f'value="alice@vendor"></label><input type="hidden" name="next" value="{here}">'
                "<button>Log in and consent</button></form>"
            )
            await HTMLResponse(page, status_code=401)(scope, receive, send)
            return
        reset = logged_in.set(user)
        try:
            await as_app(scope, receive, send)
        finally:
            logged_in.reset(reset)

    def _login(self, request: Request) -> PlainTextResponse | RedirectResponse:
        """The vendor's login, for a person trying the demo in a browser: any
        user name, back to the authorization request it came from."""
        user = request.query_params.get("user", "").strip()
        back = request.query_params.get("next", "")
        if not user or not back.startswith("/authorize?"):  # never an open redirect
            return PlainTextResponse("log in from an authorization request", status_code=400)
        response = RedirectResponse(back, status_code=303)
        response.set_cookie(SESSION_COOKIE, self.login(user)[SESSION_COOKIE], httponly=True)
        return response

    async def _challenged(
        self, mcp_app: ASGIApp, scope: Scope, receive: Receive, send: Send
    ) -> None:
        """A write_note call whose token lacks notes:write: 403 insufficient_scope
        (RFC 6750 §3.1; MCP authorization, "Scope Challenge Handling")."""
        body, replay = await read_body(receive)
        with contextlib.suppress(ValueError, AttributeError):
            request = json.loads(body)
            auth = Request(scope).headers.get("authorization", "")
            token = self.provider.access.get(auth.partition(" ")[2])
            if (
                request.get("method") == "tools/call"
                and request.get("params", {}).get("name") == "write_note"
                and token is not None
                and "notes:write" not in token.scopes
            ):
                challenge = (
                    'Bearer error="insufficient_scope", scope="notes:read notes:write", '
                    f'resource_metadata="{self.url}/.well-known/oauth-protected-resource/mcp"'
                )
                refusal = JSONResponse(
                    {"error": "insufficient_scope"},
                    status_code=403,
                    headers={"WWW-Authenticate": challenge},
                )
                await refusal(scope, receive, send)
                return
        await mcp_app(scope, replay, send)

    async def _recorded(self, as_app: ASGIApp, scope: Scope, receive: Receive, send: Send) -> None:
        """Record the body of a /token, /register or /revoke request, then hand it on."""
        body, replay = await read_body(receive)
        if scope["method"] == "POST" and scope["path"] == "/token":
            form = dict(parse_qsl(body.decode(), keep_blank_values=True))
            self.token_requests.append(form)
            if form.get("grant_type") == "client_credentials":
                basic = Request(scope).headers.get("authorization", "")
                await self._client_credentials(form, basic)(scope, receive, send)
                return
        elif scope["method"] == "POST" and scope["path"] == "/register":
            with contextlib.suppress(ValueError):  # the SDK answers a malformed body itself
                self.registrations.append(json.loads(body))
        await as_app(scope, replay, send)

    def _client_credentials(self, form: dict[str, str], basic: str) -> JSONResponse:
        """RFC 6749 §4.4, which the SDK's token endpoint does not offer: a token
        for a confidential client registered for it, as itself (its secret by
        HTTP Basic, §2.3.1, or in the form)."""
        client_id, secret = form.get("client_id", ""), form.get("client_secret", "")
        if basic.lower().startswith("basic "):
            with contextlib.suppress(ValueError):
                decoded = base64.b64decode(basic[6:]).decode()
                client_id, _, secret = (unquote(part) for part in decoded.partition(":"))
        client = self.provider.clients.get(client_id)
        if (
            client is None
            or not client.client_secret
            or not secrets.compare_digest(client.client_secret, secret)
            or "client_credentials" not in client.grant_types
        ):
            return JSONResponse({"error": "invalid_client"}, status_code=401)
        assert client.client_id is not None
        scopes = form.get("scope", "").split() or list(self.scopes)
        grant = RefreshToken(token="", client_id=client.client_id, scopes=scopes, subject=None)
        return JSONResponse(self.provider.issue(grant).model_dump(exclude_none=True))

    # -- the tools ---------------------------------------------------------------------

    def _record(self, tool: str) -> AccessToken:
        token = get_access_token()
        assert token is not None, "the MCP server let an unauthenticated call through"
        self.calls.append(
            {
                "tool": tool,
                "subject": token.subject,
                "scopes": list(token.scopes),
                "client_id": token.client_id,
                "token": token.token,
            }
        )
        return token

    async def whoami(self) -> str:
        token = self._record("whoami")
        return json.dumps(
            {"subject": token.subject, "scopes": token.scopes, "client_id": token.client_id}
        )

    async def write_note(self, text: str) -> str:
        token = self._record("write_note")
        if "notes:write" not in token.scopes:
            raise ToolError("insufficient scope: write_note needs notes:write")
        return f"noted: {text}"

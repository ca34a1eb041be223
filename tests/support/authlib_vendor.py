"""A second vendor whose MCP server trusts only its own authorization server --
this one built from Authlib's OAuth 2.0 server (its `AuthorizationServer`,
authorization-code grant with PKCE required, refresh-token grant with
rotation, RFC 7009 revocation, RFC 9207 ``iss``), not the `mcp` SDK's
(`gateway.demo.vendor`): an authorization server nobody here wrote, with its
own reading of every request.

Authlib's server core is framework-neutral: `_Server` feeds it requests
built from Starlette's (`_oauth2_request`) and turns its answers into
Starlette responses. Clients are registered out of band (`preregister`);
users "log in" by cookie (`login`). The MCP server (the official SDK's)
checks bearer tokens against what this server issued; it serves RFC 9728
metadata naming it. Authlib knows no RFC 8707 ``resource``: it ignores it,
and its tokens are not bound to one.
"""

from __future__ import annotations

import hmac
import json
import os
import secrets
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from authlib.oauth2 import AuthorizationServer
from authlib.oauth2.rfc6749 import (
    AuthorizationCodeMixin,
    ClientMixin,
    OAuth2Payload,
    OAuth2Request,
    TokenMixin,
)
from authlib.oauth2.rfc6749.grants import AuthorizationCodeGrant, RefreshTokenGrant
from authlib.oauth2.rfc6750 import BearerTokenGenerator
from authlib.oauth2.rfc7009 import RevocationEndpoint
from authlib.oauth2.rfc7636 import CodeChallenge
from authlib.oauth2.rfc9207 import IssuerParameter
from mcp.server.auth.middleware.auth_context import get_access_token
from mcp.server.auth.provider import AccessToken
from mcp.server.auth.settings import AuthSettings
from mcp.server.mcpserver import MCPServer
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from gateway.demo.servers import Server

# Authlib refuses plain http outside this switch; the tests run on 127.0.0.1.
os.environ.setdefault("AUTHLIB_INSECURE_TRANSPORT", "1")
COOKIE = "authlib_vendor_session"
AUTH_METHODS = ["client_secret_basic", "client_secret_post"]


@dataclass
class Client(ClientMixin):  # type: ignore[misc]
    client_id: str
    client_secret: str
    redirect_uris: list[str]
    scope: str

    def get_client_id(self) -> str:
        return self.client_id

    def get_default_redirect_uri(self) -> str:
        return self.redirect_uris[0]

    def get_allowed_scope(self, scope: str | None) -> str:
        allowed = set(self.scope.split())
        return " ".join(s for s in (scope or "").split() if s in allowed)

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        return redirect_uri in self.redirect_uris

    def check_client_secret(self, client_secret: str) -> bool:
        return hmac.compare_digest(client_secret.encode(), self.client_secret.encode())

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        return method in AUTH_METHODS

    def check_response_type(self, response_type: str) -> bool:
        return response_type == "code"

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type in ("authorization_code", "refresh_token")


@dataclass
class Code(AuthorizationCodeMixin):  # type: ignore[misc]
    code: str
    client_id: str
    redirect_uri: str
    scope: str
    user: str
    code_challenge: str | None
    code_challenge_method: str | None
    issued_at: float = field(default_factory=time.time)

    def get_redirect_uri(self) -> str:
        return self.redirect_uri

    def get_scope(self) -> str:
        return self.scope


@dataclass
class Token(TokenMixin):  # type: ignore[misc]
    access_token: str
    refresh_token: str | None
    client: Client
    scope: str
    user: str
    expires_in: int
    issued_at: float = field(default_factory=time.time)
    revoked: bool = False

    def check_client(self, client: Client) -> bool:
        return bool(client.client_id == self.client.client_id)

    def get_scope(self) -> str:
        return self.scope

    def get_expires_in(self) -> int:
        return self.expires_in

    def is_expired(self) -> bool:
        return time.time() > self.issued_at + self.expires_in

    def is_revoked(self) -> bool:
        return self.revoked

    def get_user(self) -> str:
        return self.user

    def get_client(self) -> Client:
        return self.client


class _Payload(OAuth2Payload):  # type: ignore[misc]
    def __init__(self, values: list[tuple[str, str]]) -> None:
        self._values = values

    @property
    def data(self) -> dict[str, str]:
        return dict(self._values)

    @property
    def datalist(self) -> defaultdict[str, list[str]]:
        found: defaultdict[str, list[str]] = defaultdict(list)
        for key, value in self._values:
            found[key].append(value)
        return found


class _Request(OAuth2Request):  # type: ignore[misc]
    def __init__(self, request: Request, form: list[tuple[str, str]]) -> None:
        super().__init__(request.method, str(request.url), headers=request.headers)
        self._query = list(request.query_params.multi_items())
        self._form = form
        self.payload = _Payload(self._query + form)

    @property
    def args(self) -> dict[str, str]:
        return dict(self._query)

    @property
    def form(self) -> dict[str, str]:
        return dict(self._form)


class _Answer(Response):
    """Authlib's answer; its RFC 9207 extension rewrites ``location``."""

    @property
    def location(self) -> str | None:
        return self.headers.get("location")

    @location.setter
    def location(self, value: str) -> None:
        self.headers["location"] = value


class AuthlibVendor:
    """The authorization server and the MCP server it protects, on one port."""

    def __init__(
        self, scopes: tuple[str, ...] = ("notes:read", "notes:write"), access_seconds: int = 3600
    ) -> None:
        self.scopes = scopes
        self.access_seconds = access_seconds
        self.clients: dict[str, Client] = {}
        self.codes: dict[str, Code] = {}
        self.tokens: list[Token] = []
        self.sessions: dict[str, str] = {}
        self.calls: list[dict[str, Any]] = []
        self.token_requests: list[dict[str, str]] = []
        self.revoked: list[str] = []
        self.url = ""
        self.thread: Server | None = None
        self.server = self._server()

    # -- the test's handles --------------------------------------------------------

    def __enter__(self) -> AuthlibVendor:
        server = Server("authlib-vendor")
        self.url = server.url
        self.thread = server.start(self.app())
        return self

    def __exit__(self, *exc: object) -> None:
        if self.thread is not None:
            self.thread.stop()

    @property
    def mcp_url(self) -> str:
        return self.url + "/mcp"

    def login(self, user: str) -> dict[str, str]:
        cookie = secrets.token_urlsafe(16)
        self.sessions[cookie] = user
        return {COOKIE: cookie}

    def preregister(self, client_id: str, client_secret: str, redirect_uri: str) -> None:
        self.clients[client_id] = Client(
            client_id, client_secret, [redirect_uri], " ".join(self.scopes)
        )

    def live(self, access_token: str) -> Token | None:
        for token in self.tokens:
            if token.access_token == access_token and not token.revoked and not token.is_expired():
                return token
        return None

    # -- Authlib's server ------------------------------------------------------------

    def _server(self) -> AuthorizationServer:
        vendor = self

        class Server_(AuthorizationServer):  # type: ignore[misc]
            def query_client(self, client_id: str) -> Client | None:
                return vendor.clients.get(client_id)

            def save_token(self, token: dict[str, Any], request: OAuth2Request) -> None:
                user = request.user or (request.refresh_token.user if request.refresh_token else "")
                vendor.tokens.append(
                    Token(
                        access_token=token["access_token"],
                        refresh_token=token.get("refresh_token"),
                        client=request.client,
                        scope=token.get("scope", ""),
                        user=user,
                        expires_in=int(token["expires_in"]),
                    )
                )

            def create_oauth2_request(self, request: Any) -> Any:
                return request

            def create_json_request(self, request: Any) -> Any:
                return request

            def handle_response(self, status: int, body: Any, headers: Any) -> Response:
                content = json.dumps(body) if isinstance(body, dict) else (body or "")
                return _Answer(content, status_code=status, headers=dict(headers))

            def send_signal(self, name: str, *args: Any, **kwargs: Any) -> None:
                return None

        class CodeGrant(AuthorizationCodeGrant):  # type: ignore[misc]
            TOKEN_ENDPOINT_AUTH_METHODS = AUTH_METHODS

            def save_authorization_code(self, code: str, request: OAuth2Request) -> None:
                data = request.payload.data
                vendor.codes[code] = Code(
                    code=code,
                    client_id=request.client.client_id,
                    redirect_uri=data.get("redirect_uri", ""),
                    scope=request.payload.scope or "",
                    user=request.user,
                    code_challenge=data.get("code_challenge"),
                    code_challenge_method=data.get("code_challenge_method"),
                )

            def query_authorization_code(self, code: str, client: Client) -> Code | None:
                found = vendor.codes.get(code)
                return found if found is not None and found.client_id == client.client_id else None

            def delete_authorization_code(self, authorization_code: Code) -> None:
                vendor.codes.pop(authorization_code.code, None)

            def authenticate_user(self, authorization_code: Code) -> str:
                return authorization_code.user

        class RefreshGrant(RefreshTokenGrant):  # type: ignore[misc]
            TOKEN_ENDPOINT_AUTH_METHODS = AUTH_METHODS
            INCLUDE_NEW_REFRESH_TOKEN = True  # rotation

            def authenticate_refresh_token(self, refresh_token: str) -> Token | None:
                for token in vendor.tokens:
                    if token.refresh_token == refresh_token and not token.revoked:
                        return token
                return None

            def authenticate_user(self, refresh_token: Token) -> str:
                return refresh_token.user

            def revoke_old_credential(self, refresh_token: Token) -> None:
                refresh_token.revoked = True

        class Revocation(RevocationEndpoint):  # type: ignore[misc]
            CLIENT_AUTH_METHODS = AUTH_METHODS

            def query_token(self, token_string: str, token_type_hint: str | None) -> Token | None:
                for token in vendor.tokens:
                    if token_string in (token.access_token, token.refresh_token):
                        return token
                return None

            def revoke_token(self, token: Token, request: OAuth2Request) -> None:
                token.revoked = True
                vendor.revoked.append(token.access_token)

        class Issuer(IssuerParameter):  # type: ignore[misc]
            def get_issuer(self) -> str:
                return vendor.url

        server = Server_()
        server.register_token_generator(
            "default",
            BearerTokenGenerator(
                access_token_generator=lambda **_: secrets.token_urlsafe(24),
                refresh_token_generator=lambda **_: secrets.token_urlsafe(24),
                expires_generator=lambda client, grant_type: vendor.access_seconds,
            ),
        )
        server.register_grant(CodeGrant, [CodeChallenge(required=True)])
        server.register_grant(RefreshGrant)
        server.register_endpoint(Revocation)
        server.register_extension(Issuer())
        return server

    def metadata(self) -> dict[str, Any]:
        """RFC 8414, written out: Authlib validates metadata, it does not serve it."""
        return {
            "issuer": self.url,
            "authorization_endpoint": self.url + "/oauth/authorize",
            "token_endpoint": self.url + "/oauth/token",
            "revocation_endpoint": self.url + "/oauth/revoke",
            "response_types_supported": ["code"],
            "grant_types_supported": ["authorization_code", "refresh_token"],
            "token_endpoint_auth_methods_supported": AUTH_METHODS,
            "code_challenge_methods_supported": ["S256"],
            "scopes_supported": list(self.scopes),
            "authorization_response_iss_parameter_supported": True,
        }

    # -- HTTP --------------------------------------------------------------------------

    async def _oauth(self, request: Request) -> Response:
        form: list[tuple[str, str]] = []
        if request.method == "POST":
            form = [(k, str(v)) for k, v in (await request.form()).multi_items()]
        oauth_request = _Request(request, form)
        path = request.url.path
        if path == "/oauth/authorize":
            user = self.sessions.get(request.cookies.get(COOKIE, ""))
            if user is None:
                return PlainTextResponse("not logged in at the vendor", status_code=401)
            grant = self.server.get_consent_grant(oauth_request, end_user=user)
            answer: Response = self.server.create_authorization_response(
                oauth_request, grant_user=user, grant=grant
            )
            return answer
        if path == "/oauth/token":
            self.token_requests.append(dict(form))
            token_answer: Response = self.server.create_token_response(oauth_request)
            return token_answer
        revoked: Response = self.server.create_endpoint_response("revocation", oauth_request)
        return revoked

    def app(self) -> ASGIApp:
        vendor = self

        class Verifier:
            async def verify_token(self, token: str) -> AccessToken | None:
                found = vendor.live(token)
                if found is None:
                    return None
                return AccessToken(
                    token=token,
                    client_id=found.client.client_id,
                    scopes=found.scope.split(),
                    expires_at=int(found.issued_at + found.expires_in),
                    subject=found.user,
                )

        auth = AuthSettings(
            issuer_url=self.url, resource_server_url=self.mcp_url, validate_token_resource=False
        )
        mcp = MCPServer("authlib-vendor", token_verifier=Verifier(), auth=auth)

        async def whoami() -> str:
            token = get_access_token()
            assert token is not None
            vendor.calls.append({"subject": token.subject, "token": token.token})
            return json.dumps({"subject": token.subject, "scopes": token.scopes})

        mcp.add_tool(whoami, description="Who the bearer token speaks for.")
        mcp_app = mcp.streamable_http_app(stateless_http=True)

        async def app(scope: Scope, receive: Receive, send: Send) -> None:
            path = scope.get("path", "")
            if scope["type"] == "http" and path == "/.well-known/oauth-authorization-server":
                await JSONResponse(vendor.metadata())(scope, receive, send)
            elif scope["type"] == "http" and path.startswith("/oauth/"):
                response = await vendor._oauth(Request(scope, receive))
                await response(scope, receive, send)
            else:
                await mcp_app(scope, receive, send)

        return app

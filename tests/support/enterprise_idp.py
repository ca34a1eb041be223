"""A company identity provider and an MCP server that trusts only it.

The provider signs RFC 9068 access tokens with its own key (published at
``/jwks``, so the gateway can trust it as an issuer) and offers, at
``/token``, the grants an on-behalf-of exchange uses: RFC 8693 token exchange
and the ``jwt-bearer`` on-behalf-of grant (Microsoft Entra ID's form), both
for its one confidential client (HTTP Basic), plus client credentials. A
subject token is accepted only if this provider issued it and it has not
expired; the token handed back names the same user, for the ``audience`` (or
``resource``) asked.

The MCP server (the official SDK's `MCPServer`, stateless Streamable HTTP at
``{url}/mcp``) accepts only tokens this provider issued for it; `whoami` says
whose token it was given.
"""

from __future__ import annotations

import base64
import json
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

from mcp.server.auth.middleware.auth_context import get_access_token
from mcp.server.auth.provider import AccessToken
from mcp.server.auth.settings import AuthSettings
from mcp.server.mcpserver import MCPServer
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from policies.jws import sign_compact
from policies.keys import SigningKey
from policies.tokens import mint_access_token
from tests.support.servers import ServerThread

TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"
JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
ID_JAG = "urn:ietf:params:oauth:token-type:id-jag"
CLIENT = ("switchboard", "gw-secret-at-the-idp")


@dataclass
class EnterpriseIdp:
    key: SigningKey = field(default_factory=SigningKey.generate)
    url: str = ""
    mcp_url: str = ""
    # token -> (subject, audience, expires at, client id)
    issued: dict[str, tuple[str, str, float, str]] = field(default_factory=dict)
    exchanges: list[dict[str, str]] = field(default_factory=list)
    # An authorization server's issuer -> the gateway's client id there: the
    # servers this provider issues ID-JAGs for (SEP-990).
    jag_clients: dict[str, str] = field(default_factory=dict)
    calls: list[dict[str, Any]] = field(default_factory=list)
    thread: ServerThread | None = None

    def start(self) -> EnterpriseIdp:
        self.thread = ServerThread(self.app).start()
        return self

    def stop(self) -> None:
        if self.thread is not None:
            self.thread.stop()

    def __enter__(self) -> EnterpriseIdp:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def user_token(self, subject: str, audience: str, scopes: str = "") -> str:
        """The token the user's own client got from this provider (to call the gateway)."""
        return self._mint(subject, audience, scopes.split(), "users-app", ttl=600)

    def _mint(self, subject: str, audience: str, scopes: list[str], client: str, ttl: int) -> str:
        token = mint_access_token(
            self.key,
            issuer=self.url,
            subject=subject,
            audience=audience,
            scopes=scopes,
            ttl_seconds=ttl,
            client_id=client,
            token_id=secrets.token_hex(8),
        )
        self.issued[token] = (subject, audience, time.time() + ttl, client)
        return token

    def app(self, url: str) -> ASGIApp:
        self.url, self.mcp_url = url, url + "/mcp"
        server: MCPServer[Any] = MCPServer(
            "company-tools",
            token_verifier=_Verifier(self),
            auth=AuthSettings(
                issuer_url=url, resource_server_url=self.mcp_url, validate_token_resource=False
            ),
        )
        server.add_tool(self.whoami, description="Whose token the server was given.")
        mcp_app = server.streamable_http_app(stateless_http=True)

        async def app(scope: Scope, receive: Receive, send: Send) -> None:
            path = scope.get("path", "")
            if scope["type"] == "http" and path == "/token":
                await (await self._token(Request(scope, receive)))(scope, receive, send)
            elif scope["type"] == "http" and path == "/jwks":
                await JSONResponse({"keys": [self.key.public_jwk]})(scope, receive, send)
            else:
                await mcp_app(scope, receive, send)

        return app

    async def _token(self, request: Request) -> Response:
        form = {k: str(v) for k, v in (await request.form()).items()}
        self.exchanges.append(form)
        expected = "Basic " + base64.b64encode(":".join(CLIENT).encode()).decode()
        if request.headers.get("authorization") != expected:
            return JSONResponse({"error": "invalid_client"}, status_code=401)
        grant = form.get("grant_type")
        audience = form.get("audience") or form.get("resource") or ""
        if grant == "client_credentials":
            subject = CLIENT[0]
        elif grant in (TOKEN_EXCHANGE, JWT_BEARER):
            presented = form.get("subject_token" if grant == TOKEN_EXCHANGE else "assertion", "")
            known = self.issued.get(presented)
            if known is None or known[2] < time.time() or known[3] != "users-app":
                return JSONResponse({"error": "invalid_grant"}, status_code=400)
            subject = known[0]
            if form.get("requested_token_type") == ID_JAG:
                return self._id_jag(subject, form)
        else:
            return JSONResponse({"error": "unsupported_grant_type"}, status_code=400)
        token = self._mint(subject, audience, form.get("scope", "").split(), CLIENT[0], ttl=300)
        return JSONResponse(
            {
                "access_token": token,
                "issued_token_type": "urn:ietf:params:oauth:token-type:access_token",
                "token_type": "Bearer",
                "expires_in": 300,
            }
        )

    def _id_jag(self, subject: str, form: dict[str, str]) -> Response:
        """SEP-990 leg 1: an identity assertion for the upstream's authorization
        server (``audience``), naming the client the gateway is there."""
        audience = form.get("audience", "")
        client = self.jag_clients.get(audience)
        if client is None:
            return JSONResponse({"error": "invalid_target"}, status_code=400)
        now = int(time.time())
        claims = {
            "iss": self.url,
            "sub": subject,
            "aud": audience,
            "client_id": client,
            "jti": secrets.token_hex(8),
            "iat": now,
            "exp": now + 300,
            "resource": form.get("resource"),
            "scope": form.get("scope", ""),
        }
        headers = {"kid": self.key.kid, "typ": "oauth-id-jag+jwt"}
        jag = sign_compact(
            json.dumps(claims).encode(), self.key.private_key_pem, self.key.alg, headers
        )
        return JSONResponse(
            {
                "access_token": jag,
                "issued_token_type": ID_JAG,
                "token_type": "N_A",
                "expires_in": 300,
            }
        )

    async def whoami(self) -> str:
        token = get_access_token()
        assert token is not None
        subject, audience, _, client = self.issued[token.token]
        self.calls.append({"subject": subject, "audience": audience, "token": token.token})
        return json.dumps({"subject": subject, "audience": audience, "client_id": client})


class _Verifier:
    """Only tokens the provider issued for this very server, unexpired."""

    def __init__(self, idp: EnterpriseIdp) -> None:
        self.idp = idp

    async def verify_token(self, token: str) -> AccessToken | None:
        known = self.idp.issued.get(token)
        if known is None or known[1] != self.idp.mcp_url or known[2] < time.time():
            return None
        return AccessToken(token=token, client_id=known[3], scopes=[], expires_at=int(known[2]))

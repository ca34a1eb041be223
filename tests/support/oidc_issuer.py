"""A small OpenID Connect issuer for the console's login tests: discovery,
an authorization endpoint that logs its one user in at once, a token endpoint
that checks PKCE (RFC 7636 §4.6, S256) and hands out RFC 9068 access tokens,
and its JWKS. Each code works once."""

from __future__ import annotations

import base64
import hashlib
import secrets
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from policies.keys import SigningKey
from policies.tokens import mint_access_token
from tests.support.servers import ServerThread


@dataclass
class Issuer:
    subject: str = "erin"
    scopes: str = "crm:read"
    audience: str | None = None  # None: the `resource` the client asked for
    key: SigningKey = field(default_factory=SigningKey.generate)
    url: str = ""
    codes: dict[str, dict[str, str]] = field(default_factory=dict)
    authorize_requests: list[dict[str, str]] = field(default_factory=list)
    token_requests: list[dict[str, str]] = field(default_factory=list)
    issued: list[str] = field(default_factory=list)

    def app(self, url: str) -> Starlette:
        self.url = url

        async def discovery(request: Request) -> Response:
            return JSONResponse(
                {
                    "issuer": self.url,
                    "authorization_endpoint": self.url + "/authorize",
                    "token_endpoint": self.url + "/token",
                    "jwks_uri": self.url + "/jwks",
                    "code_challenge_methods_supported": ["S256"],
                }
            )

        async def authorize(request: Request) -> Response:
            asked = dict(request.query_params)
            self.authorize_requests.append(asked)
            code = secrets.token_urlsafe(16)
            self.codes[code] = asked
            query = urlencode({"code": code, "state": asked.get("state", "")})
            return RedirectResponse(asked["redirect_uri"] + "?" + query, status_code=302)

        async def token(request: Request) -> Response:
            form = {k: str(v) for k, v in (await request.form()).items()}
            self.token_requests.append(form)
            asked = self.codes.pop(form.get("code", ""), None)
            if asked is None or form.get("redirect_uri") != asked["redirect_uri"]:
                return JSONResponse({"error": "invalid_grant"}, status_code=400)
            digest = hashlib.sha256(form.get("code_verifier", "").encode()).digest()
            challenge = base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
            if asked.get("code_challenge_method") != "S256" or challenge != asked.get(
                "code_challenge"
            ):
                return JSONResponse({"error": "invalid_grant"}, status_code=400)
            access = mint_access_token(
                self.key,
                issuer=self.url,
                subject=self.subject,
                audience=self.audience or asked["resource"],
                scopes=self.scopes.split(),
                ttl_seconds=600,
                client_id=asked["client_id"],
            )
            self.issued.append(access)
            body: dict[str, Any] = {
                "access_token": access,
                "token_type": "Bearer",
                "expires_in": 600,
            }
            return JSONResponse(body)

        async def jwks(request: Request) -> Response:
            return JSONResponse({"keys": [self.key.public_jwk]})

        return Starlette(
            routes=[
                Route("/.well-known/openid-configuration", discovery),
                Route("/authorize", authorize),
                Route("/token", token, methods=["POST"]),
                Route("/jwks", jwks),
            ]
        )


def oidc_issuer(issuer: Issuer) -> ServerThread:
    return ServerThread(issuer.app).start()

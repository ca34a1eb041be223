"""The console as an OpenID Connect client: authorization code with PKCE.

* PKCE (RFC 7636): a fresh `code_verifier` per login, kept server-side; the
  issuer gets only its S256 `code_challenge` (§4.2), so a code caught on its
  way back (a log, a browser extension) is useless without it (§1).
* `state` (RFC 6749 §10.12): random, bound to the browser's login cookie and
  compared in constant time at the callback -- no login CSRF.
* `resource` (RFC 8707): the gateway's resource id, so the access token is
  one the gateway accepts as a bearer token (`aud`).
* The endpoints come from the issuer's discovery document (OpenID Connect
  Discovery 1.0 §4), whose `issuer` must be the configured one exactly (§4.3),
  unless the operator names them.

The access token the issuer returns is verified by the caller with the
gateway's own `TokenVerifier` (`policies.tokens`, which wraps python-jose in
`policies.jws`), exactly as a bearer token on the API is; nothing here parses
a JWT. The token is then dropped: the session keeps the identity only.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import httpx

from gateway.console.sessions import new_secret
from gateway.settings.console import ConsoleOidc

_MAX_DOCUMENT_BYTES = 64 * 1024


class LoginFailed(Exception):
    """The issuer said no, or answered nonsense; ``str()`` is safe to show."""


@dataclass(frozen=True)
class Endpoints:
    authorization: str
    token: str


def pkce_pair() -> tuple[str, str]:
    """A `code_verifier` (43 characters of base64url, RFC 7636 §4.1) and its S256
    `code_challenge` = BASE64URL(SHA256(verifier)) without padding (§4.2)."""
    verifier = new_secret()
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


class OidcClient:
    def __init__(self, config: ConsoleOidc, *, resource: str, redirect_uri: str) -> None:
        self.config = config
        self.resource = resource
        self.redirect_uri = redirect_uri
        self._endpoints: Endpoints | None = None

    async def endpoints(self) -> Endpoints:
        if self._endpoints is not None:
            return self._endpoints
        authorization = self.config.authorization_endpoint
        token = self.config.token_endpoint
        if authorization is None or token is None:
            found = await self._discover()
            authorization = authorization or _string(found, "authorization_endpoint")
            token = token or _string(found, "token_endpoint")
        self._endpoints = Endpoints(authorization, token)
        return self._endpoints

    async def _discover(self) -> dict[str, Any]:
        url = self.config.issuer.rstrip("/") + "/.well-known/openid-configuration"
        document = await self._get_json(url)
        # OIDC Discovery §4.3: the document's issuer MUST be identical to the one asked.
        if document.get("issuer") != self.config.issuer:
            raise LoginFailed("the issuer's discovery document names another issuer")
        return document

    async def authorization_url(self, state: str, code_challenge: str) -> str:
        endpoints = await self.endpoints()
        query = urlencode(
            {
                "response_type": "code",
                "client_id": self.config.client_id,
                "redirect_uri": self.redirect_uri,
                "scope": self.config.scope,
                "state": state,
                "code_challenge": code_challenge,
                "code_challenge_method": "S256",
                "resource": self.resource,
            }
        )
        separator = "&" if "?" in endpoints.authorization else "?"
        return endpoints.authorization + separator + query

    async def exchange(self, code: str, code_verifier: str) -> str:
        """The access token for ``code`` (RFC 6749 §4.1.3, with the verifier)."""
        endpoints = await self.endpoints()
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": self.redirect_uri,
            "client_id": self.config.client_id,
            "code_verifier": code_verifier,
            "resource": self.resource,
        }
        auth = None
        if self.config.client_secret is not None:
            # RFC 6749 §2.3.1: HTTP Basic for a confidential client.
            auth = httpx.BasicAuth(
                self.config.client_id, self.config.client_secret.get_secret_value()
            )
        try:
            async with httpx.AsyncClient(timeout=10, follow_redirects=False, auth=auth) as client:
                answer = await client.post(endpoints.token, data=form)
        except httpx.HTTPError as exc:
            raise LoginFailed(
                f"the issuer's token endpoint is unreachable ({type(exc).__name__})"
            ) from None
        body = _json(answer)
        if answer.status_code != 200:
            error = body.get("error") if isinstance(body.get("error"), str) else "error"
            raise LoginFailed(f"the issuer refused the code ({str(error)[:100]})")
        return _string(body, "access_token")

    async def _get_json(self, url: str) -> dict[str, Any]:
        try:
            async with httpx.AsyncClient(timeout=10, follow_redirects=False) as client:
                answer = await client.get(url, headers={"Accept": "application/json"})
        except httpx.HTTPError as exc:
            raise LoginFailed(f"the issuer is unreachable ({type(exc).__name__})") from None
        if answer.status_code != 200:
            raise LoginFailed(f"the issuer's discovery document answered {answer.status_code}")
        return _json(answer)


def _json(answer: httpx.Response) -> dict[str, Any]:
    if len(answer.content) > _MAX_DOCUMENT_BYTES:
        raise LoginFailed("the issuer's answer is too large")
    try:
        body = answer.json()
    except ValueError:
        raise LoginFailed("the issuer's answer is not JSON") from None
    if not isinstance(body, dict):
        raise LoginFailed("the issuer's answer is not a JSON object")
    return body


def _string(document: dict[str, Any], name: str) -> str:
    value = document.get(name)
    if not isinstance(value, str) or not value:
        raise LoginFailed(f"the issuer's answer has no {name}")
    return value

"""The gateway's own token for an upstream, by OAuth 2.0 client credentials.

RFC 6749 §4.4: the gateway authenticates to the upstream's authorization
server as a client (HTTP Basic, §2.3.1) and gets an access token for itself,
optionally for one resource (RFC 8707). The token is cached until shortly
before it expires; concurrent calls share one request. The token endpoint is
reached through the same SSRF-checked client as the upstream, without any
per-call credential (that client's auth is `NoUpstreamAuth`).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from urllib.parse import quote

import httpx2

from adapters.mcp_http import Credential

_EARLY_SECONDS = 30  # refresh this long before the token expires
_DEFAULT_LIFETIME = 300  # when the server does not say (RFC 6749 §5.1 expires_in is optional)


class UpstreamAuthFailed(Exception):
    """The upstream's authorization server did not give the gateway a token."""


class ClientCredentialsToken:
    def __init__(
        self,
        http: httpx2.AsyncClient,
        *,
        token_url: str,
        client_id: str,
        client_secret: str,
        scope: str | None = None,
        resource: str | None = None,
        audience: str | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._http = http
        self._token_url = token_url
        self._client_id = client_id
        self._client_secret = client_secret
        self._scope = scope
        self._resource = resource
        self._audience = audience
        self._clock = clock
        self._cached: tuple[float, Credential] | None = None
        self._lock = asyncio.Lock()

    async def credential(self) -> Credential:
        cached = self._cached
        if cached is not None and cached[0] > self._clock():
            return cached[1]
        async with self._lock:
            cached = self._cached
            if cached is not None and cached[0] > self._clock():
                return cached[1]
            token, lifetime = await self._request()
            credential = Credential("Authorization", f"Bearer {token}")
            self._cached = (self._clock() + max(lifetime - _EARLY_SECONDS, 1), credential)
            return credential

    async def _request(self) -> tuple[str, float]:
        form = {"grant_type": "client_credentials"}
        if self._scope:
            form["scope"] = self._scope
        if self._resource:
            form["resource"] = self._resource
        if self._audience:  # as identity providers name the target (RFC 8693 §2.1)
            form["audience"] = self._audience
        # §2.3.1: the id and secret are form-urlencoded before Basic encoding.
        basic = httpx2.BasicAuth(
            quote(self._client_id, safe=""), quote(self._client_secret, safe="")
        )
        try:
            response = await self._http.post(
                self._token_url, data=form, auth=basic, headers={"Accept": "application/json"}
            )
            body = response.json() if response.content else {}
        except (httpx2.HTTPError, ValueError) as exc:
            raise UpstreamAuthFailed(
                f"token endpoint {self._token_url}: {type(exc).__name__}: {exc}"
            ) from None
        if response.status_code != 200 or not isinstance(body, dict):
            error = body.get("error") if isinstance(body, dict) else None
            raise UpstreamAuthFailed(
                f"token endpoint {self._token_url} answered HTTP {response.status_code}"
                + (f" ({error})" if isinstance(error, str) else "")
            )
        token = body.get("access_token")
        token_type = body.get("token_type", "Bearer")
        if not isinstance(token, str) or not token or not isinstance(token_type, str):
            raise UpstreamAuthFailed(f"token endpoint {self._token_url} sent no access_token")
        if token_type.lower() != "bearer":
            raise UpstreamAuthFailed(f"token endpoint sent a {token_type!r} token, not Bearer")
        if any(ord(c) < 0x21 or ord(c) > 0x7E for c in token):
            raise UpstreamAuthFailed("token endpoint sent a token that cannot go in a header")
        lifetime = body.get("expires_in", _DEFAULT_LIFETIME)
        if not isinstance(lifetime, int | float) or isinstance(lifetime, bool) or lifetime <= 0:
            lifetime = _DEFAULT_LIFETIME
        return token, float(lifetime)

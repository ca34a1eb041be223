"""On behalf of the user at the company's identity provider (`idp_token_exchange`).

Where an upstream trusts the company's identity provider, not the gateway,
the user's own token from that provider -- the bearer token their call came
in with -- is exchanged at that provider for a token for the upstream:

* RFC 8693 token exchange (``grant_type`` ``...:token-exchange``, the user's
  token as ``subject_token``, ``audience`` / ``resource`` / ``scope`` naming
  the upstream);
* or the on-behalf-of flow some providers use instead (Microsoft Entra ID:
  RFC 7523 ``jwt-bearer`` with the token as ``assertion`` and
  ``requested_token_use=on_behalf_of``);
* or, where the upstream has an authorization server of its own that
  trusts the company's provider, the identity assertion grant of MCP's
  enterprise-managed authorization (SEP-990,
  draft-ietf-oauth-identity-assertion-authz-grant): the user's token is
  exchanged at the provider for an ID-JAG (RFC 8693, ``requested_token_type``
  ``...:id-jag``, ``audience`` the upstream's authorization server), which
  the gateway presents there as an RFC 7523 ``jwt-bearer`` assertion, as its
  own confidential client, for the access token.

The gateway authenticates as its client at the provider (HTTP Basic, RFC 6749
§2.3.1). The user's token goes only to the provider that issued it -- a token
from any other issuer is refused before anything is sent -- and never
upstream. Exchanged tokens are kept in memory per user token until shortly
before they expire, never stored. A call that carries no token of the user's
(a flow step, a deferred or approved call, a hop through an agent) cannot be
made this way, and says so.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import httpx2

from gateway.connections.errors import OnBehalfUnavailable

TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"  # noqa: S105 - a URN
JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
ACCESS_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:access_token"  # noqa: S105 - a URN
ID_JAG_TYPE = "urn:ietf:params:oauth:token-type:id-jag"
_EARLY_SECONDS = 30
_DEFAULT_LIFETIME = 300
_MAX_CACHED = 10_000


@dataclass(frozen=True)
class OnBehalfConfig:
    upstream: str
    issuer: str
    token_url: str
    client_id: str
    client_secret: str = field(repr=False)
    grant: str = "token_exchange"
    audience: str | None = None
    resource: str | None = None
    scope: str | None = None
    # The identity assertion grant: the upstream's own authorization server
    # and the gateway's confidential client there.
    authorization_server: AuthorizationServerClient | None = None


@dataclass(frozen=True)
class AuthorizationServerClient:
    issuer: str  # the ID-JAG's audience
    token_url: str
    client_id: str
    client_secret: str = field(repr=False)


class OnBehalf:
    def __init__(
        self,
        http: httpx2.AsyncClient,
        config: OnBehalfConfig,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._http = http
        self.config = config
        self._clock = clock
        # sha256(user token) -> (usable until, exchanged token): the user's
        # token itself is not kept.
        self._cache: OrderedDict[str, tuple[float, str]] = OrderedDict()
        self._locks: dict[str, asyncio.Lock] = {}

    def _refused(self, reason: str) -> OnBehalfUnavailable:
        return OnBehalfUnavailable(self.config.upstream, reason)

    async def token_for(
        self, user_token: str | None, user_issuer: str, not_after: float | None = None
    ) -> str:
        """``not_after``: when the user's token expires (epoch seconds); a token
        exchanged from it is not reused past that, whatever its own lifetime."""
        if user_issuer != self.config.issuer:
            raise self._refused(
                f"it acts with your own token from {self.config.issuer}, and your identity "
                f"is from {user_issuer}"
            )
        if not user_token:
            raise self._refused(
                "it acts with your own token from your identity provider, which only a "
                "call you make yourself carries (not a flow step, a held or deferred call, "
                "nor a hop through an agent)"
            )
        key = hashlib.sha256(user_token.encode()).hexdigest()
        cached = self._cache.get(key)
        if cached is not None and cached[0] > self._clock():
            return cached[1]
        lock = self._locks.setdefault(key, asyncio.Lock())
        try:
            async with lock:
                cached = self._cache.get(key)
                if cached is not None and cached[0] > self._clock():
                    return cached[1]
                token, lifetime = await self._exchange(user_token)
                if not_after is not None:
                    lifetime = min(lifetime, not_after - time.time())
                self._cache[key] = (self._clock() + max(lifetime - _EARLY_SECONDS, 0), token)
                self._cache.move_to_end(key)
                while len(self._cache) > _MAX_CACHED:
                    self._cache.popitem(last=False)
                return token
        finally:
            self._locks.pop(key, None)

    def forget(self, user_token: str | None) -> None:
        """Drop what was exchanged for ``user_token`` (the server refused it)."""
        if user_token:
            self._cache.pop(hashlib.sha256(user_token.encode()).hexdigest(), None)

    def _form(self, user_token: str) -> dict[str, str]:
        config = self.config
        if config.grant == "identity_assertion":
            assert config.authorization_server is not None
            # Leg 1 (SEP-990): an ID-JAG for the upstream's authorization server.
            return {
                "grant_type": TOKEN_EXCHANGE,
                "subject_token": user_token,
                "subject_token_type": ACCESS_TOKEN_TYPE,
                "requested_token_type": ID_JAG_TYPE,
                "audience": config.authorization_server.issuer,
                **{k: v for k, v in (("resource", config.resource), ("scope", config.scope)) if v},
            }
        if config.grant == "jwt_bearer":
            form = {
                "grant_type": JWT_BEARER,
                "assertion": user_token,
                "requested_token_use": "on_behalf_of",
            }
        else:
            form = {
                "grant_type": TOKEN_EXCHANGE,
                "subject_token": user_token,
                "subject_token_type": ACCESS_TOKEN_TYPE,
                "requested_token_type": ACCESS_TOKEN_TYPE,
            }
        for name, value in (
            ("audience", config.audience),
            ("resource", config.resource),
            ("scope", config.scope),
        ):
            if value:
                form[name] = value
        return form

    async def _exchange(self, user_token: str) -> tuple[str, float]:
        config = self.config
        basic = httpx2.BasicAuth(
            quote(config.client_id, safe=""), quote(config.client_secret, safe="")
        )
        body = await self._post(
            "identity provider", config.token_url, self._form(user_token), basic
        )
        if config.grant != "identity_assertion":
            return self._bearer("identity provider", body)
        server = config.authorization_server
        assert server is not None
        assertion = body.get("access_token")
        if body.get("issued_token_type") != ID_JAG_TYPE or not _printable(assertion):
            raise self._refused("the identity provider sent no identity assertion (ID-JAG)")
        # Leg 2: the ID-JAG as an RFC 7523 grant, the gateway a confidential
        # client there (the SDK's server requires one: credentials in the form).
        form = {
            "grant_type": JWT_BEARER,
            "assertion": str(assertion),
            "client_id": server.client_id,
            "client_secret": server.client_secret,
            **{k: v for k, v in (("resource", config.resource), ("scope", config.scope)) if v},
        }
        answered = await self._post("upstream's authorization server", server.token_url, form)
        return self._bearer("upstream's authorization server", answered)

    async def _post(
        self, who: str, url: str, form: dict[str, str], auth: httpx2.Auth | None = None
    ) -> dict[str, Any]:
        headers = {"Accept": "application/json"}
        try:
            if auth is None:
                response = await self._http.post(url, data=form, headers=headers)
            else:
                response = await self._http.post(url, data=form, auth=auth, headers=headers)
            body: Any = response.json() if response.content else {}
        except (httpx2.HTTPError, ValueError) as exc:
            raise self._refused(f"the {who} cannot be reached: {type(exc).__name__}") from None
        if response.status_code != 200 or not isinstance(body, dict):
            error = body.get("error") if isinstance(body, dict) else None
            said = f" ({error[:64]})" if isinstance(error, str) and error.isprintable() else ""
            raise self._refused(
                f"the {who} refused the exchange: HTTP {response.status_code}{said}"
            )
        return body

    def _bearer(self, who: str, body: dict[str, Any]) -> tuple[str, float]:
        token = body.get("access_token")
        token_type = str(body.get("token_type", "Bearer")).lower()
        if not _printable(token) or token_type != "bearer":  # noqa: S105 - a type's name
            raise self._refused(f"the {who} sent no usable bearer token")
        lifetime = body.get("expires_in", _DEFAULT_LIFETIME)
        if not isinstance(lifetime, int | float) or isinstance(lifetime, bool) or lifetime <= 0:
            lifetime = _DEFAULT_LIFETIME
        return str(token), float(lifetime)


def _printable(token: Any) -> bool:
    """A token that can go in a header as it is (RFC 6750 §2.1's b64token, loosely)."""
    return isinstance(token, str) and bool(token) and all(0x21 <= ord(c) <= 0x7E for c in token)

"""An `httpx.Auth` for an agent that calls onward through Switchboard: it
exchanges the token the agent received for one to the next hop (RFC 8693,
`POST /oauth/token` with the agent's own client credentials), caches it, and
puts it on each request. Frameworks that take an httpx client for their A2A or
MCP calls (pydantic-ai, Google ADK, Strands, the a2a-sdk and mcp clients) get
per-hop tokens with no change of their own: docs/interop.md shows each.

Standalone on purpose: it imports only httpx and the standard library, so an
agent's own environment (whose pins differ from the gateway's) can use this
one file.

    auth = TokenExchangeAuth(
        "https://gateway.example", "support", os.environ["SUPPORT_CLIENT_SECRET"],
        subject_token=lambda: received.get(),   # the token this request came with
    )
    httpx.AsyncClient(auth=auth)   # -> .../a2a/sales gets a token for .../a2a/sales

The target is the request's front door: a request to ``{gateway}/a2a/{id}...``
is sent with a token for ``resource={gateway}/a2a/{id}``. Requests elsewhere
are sent as they are (no token leaves for a host that is not the gateway).
"""

from __future__ import annotations

import threading
import time
from collections.abc import AsyncGenerator, Callable, Generator
from dataclasses import dataclass

import httpx

from registry.tls import client_tls

GRANT = "urn:ietf:params:oauth:grant-type:token-exchange"
ACCESS_TOKEN = "urn:ietf:params:oauth:token-type:access_token"  # noqa: S105 -- a URN


class ExchangeRefused(httpx.HTTPError):
    """The gateway refused the exchange (RFC 6749 §5.2: ``error`` says why)."""

    def __init__(self, error: str, description: str) -> None:
        super().__init__(f"token exchange refused: {error}: {description}")
        self.error = error
        self.description = description


@dataclass(frozen=True)
class _Minted:
    token: str
    expires_at: float  # monotonic seconds


class TokenExchangeAuth(httpx.Auth):
    """Exchanges ``subject_token()`` for a token to each request's front door.

    ``subject_token``: the token the agent was called with, for this request
    (a string, or a callable reading it from the agent's request context).
    ``scope``: ask for less than the subject token holds (never more: the
    gateway refuses). Tokens are cached per (subject token, resource, scope)
    until a fifth of their life is left. ``traceparent``: the W3C trace
    context the agent was called with, put on the exchange and the onward
    request (when it has none), so every hop lands in the caller's trace."""

    requires_response_body = False

    def __init__(
        self,
        gateway_url: str,
        client_id: str,
        client_secret: str,
        *,
        subject_token: str | Callable[[], str | None],
        scope: str | None = None,
        traceparent: Callable[[], str | None] | None = None,
        timeout: float = 10.0,
    ) -> None:
        self.gateway_url = gateway_url.rstrip("/")
        self.client_id = client_id
        self._secret = client_secret
        self._subject = subject_token
        self.scope = scope
        self._traceparent = traceparent
        self.timeout = timeout
        self._cache: dict[tuple[str, str, str | None], _Minted] = {}
        self._lock = threading.Lock()

    def resource_for(self, url: httpx.URL) -> str | None:
        """The front door a request to ``url`` goes through, or None when it is
        not a front door of this gateway (compared parsed: scheme, host,
        port, then the path, so no look-alike host gets a token)."""
        gateway = httpx.URL(self.gateway_url)
        if (url.scheme, url.host, url.port) != (gateway.scheme, gateway.host, gateway.port):
            return None
        prefix = gateway.path.rstrip("/") + "/a2a/"
        if not url.path.startswith(prefix):
            return None
        agent_id = url.path[len(prefix) :].split("/", 1)[0]
        if not agent_id or agent_id in (".", ".."):
            return None
        return f"{self.gateway_url}/a2a/{agent_id}"

    def _subject_token(self) -> str | None:
        return self._subject() if callable(self._subject) else self._subject

    def _cached(self, key: tuple[str, str, str | None]) -> str | None:
        with self._lock:
            minted = self._cache.get(key)
        return minted.token if minted is not None and minted.expires_at > time.monotonic() else None

    def _keep(self, key: tuple[str, str, str | None], response: httpx.Response) -> str:
        if response.status_code != 200:
            try:
                body = response.json()
            except ValueError:
                body = {}
            raise ExchangeRefused(
                str(body.get("error", response.status_code)),
                str(body.get("error_description", response.text[:200])),
            )
        body = response.json()
        lifetime = float(body.get("expires_in", 60))
        minted = _Minted(str(body["access_token"]), time.monotonic() + lifetime * 0.8)
        with self._lock:
            if len(self._cache) > 1000:
                self._cache.clear()
            self._cache[key] = minted
        return minted.token

    def _exchange_request(self, subject: str, resource: str) -> httpx.Request:
        form = {
            "grant_type": GRANT,
            "subject_token": subject,
            "subject_token_type": ACCESS_TOKEN,
            "resource": resource,
        }
        if self.scope:
            form["scope"] = self.scope
        request = httpx.Request("POST", self.gateway_url + "/oauth/token", data=form)
        self._trace(request)
        return next(httpx.BasicAuth(self.client_id, self._secret).auth_flow(request))

    def _trace(self, request: httpx.Request) -> None:
        parent = self._traceparent() if self._traceparent is not None else None
        if parent and "traceparent" not in request.headers:
            request.headers["traceparent"] = parent

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response]:
        """The flow both drivers below run: the exchange request first when
        no cached token serves, then ``request`` with its token."""
        resource, subject = self.resource_for(request.url), self._subject_token()
        if resource is not None and subject:
            key = (subject, resource, self.scope)
            token = self._cached(key)
            if token is None:
                answer = yield self._exchange_request(subject, resource)
                token = self._keep(key, answer)
            request.headers["Authorization"] = f"Bearer {token}"
            self._trace(request)
        yield request

    # The exchange goes through a client of the helper's own, not the
    # caller's (whose hooks, proxies and base headers are for the agent it
    # calls), and only its answer is read: the caller's own response may be a
    # stream (httpx's `requires_response_body` would read that too).
    def sync_auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response]:
        flow = self.auth_flow(request)
        step = next(flow)
        if step is not request:
            with httpx.Client(timeout=self.timeout, trust_env=False, verify=client_tls()) as client:
                answer = client.send(step)
                answer.read()
            step = flow.send(answer)
        yield step

    async def async_auth_flow(
        self, request: httpx.Request
    ) -> AsyncGenerator[httpx.Request, httpx.Response]:
        flow = self.auth_flow(request)
        step = next(flow)
        if step is not request:
            async with httpx.AsyncClient(
                timeout=self.timeout, trust_env=False, verify=client_tls()
            ) as client:
                answer = await client.send(step)
                await answer.aread()
            step = flow.send(answer)
        yield step

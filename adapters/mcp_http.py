"""The HTTP client under every call to an MCP server: SSRF-checked at connect time.

The official `mcp` SDK's Streamable HTTP transport takes an `httpx2`
client, not the `httpx` one `adapters.http.UpstreamHTTP` wraps, so MCP
traffic has its own client. Under it, as under the A2A path, is an aiohttp
pool (`CheckedTransport`: httpx2's transport interface mapped onto one
`aiohttp.ClientSession`, the response body streamed): httpx2's own pool
(httpcore2) checks every pooled connection's expiry and readability on each
request and writes headers and body in separate sends, which, profiled, is
the largest single cost of a federated call (docs/history/
performance-to-2026-11-27.md, "MCP tools/call through the gateway"). The rules are
those of `adapters.http`:

* the URL is read as aiohttp reads it (yarl) and its scheme, credentials and
  an IP-literal host are checked before anything is sent (`checked_url`);
  the checked URL is the one aiohttp is given;
* every host name is resolved by `SafeResolver`, which checks *every*
  address under the registry's `AddressPolicy`, and aiohttp connects to
  exactly those addresses, so a rebinding DNS server gets no second answer.
  TLS still verifies the certificate against the name: aiohttp passes the
  URL's host name as SNI, and pools by name;
* no proxy from the environment, no cookies kept (in the httpx2 client nor in
  aiohttp), redirects are never followed by the client (the SDK follows
  same-origin ones itself, and those connect through the same checks);
* answers must not be content-coded (the client asks for identity), and
  non-streamed answers are capped; the SDK caps each SSE event.

The credential for an upstream is added by `UpstreamAuth`, from the call's
`CALL_CREDENTIAL` (set by the federation around one call, e.g. a token
minted for that user) or else the connection's own default. Nothing from a
caller's inbound request is ever forwarded.
"""

from __future__ import annotations

import contextlib
import http.cookiejar
import os
from collections.abc import AsyncIterator, Generator, Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from typing import NamedTuple, TypeVar

import aiohttp
import httpx2
import yarl
from mcp.client.auth.utils import extract_field_from_www_auth, extract_scope_from_www_auth

from adapters.http import (
    UpstreamRefused,
    checked_session,
    checked_url,
    refuse_coding,
)
from registry.ssrf import AddressPolicy

T = TypeVar("T")


@dataclass(frozen=True)
class Credential:
    """One header that authenticates the gateway upstream."""

    header: str
    value: str

    def __repr__(self) -> str:  # never print the value
        return f"Credential(header={self.header!r})"


# The credential for the request being sent now, set around one upstream call.
CALL_CREDENTIAL: ContextVar[Credential | None] = ContextVar("mcp_call_credential", default=None)


@contextlib.contextmanager
def call_credential(credential: Credential | None) -> Iterator[None]:
    token = CALL_CREDENTIAL.set(credential)
    try:
        yield
    finally:
        CALL_CREDENTIAL.reset(token)


class Refused(NamedTuple):
    """The server refused the call's own credential: 401 (RFC 6750 §3.1
    ``invalid_token``), or 403 ``insufficient_scope`` naming the ``scope``
    the call needs (MCP authorization 2025-11-25, "Scope Challenge Handling")."""

    status: int
    scope: str | None = None


# What the server said of the call's own credential, noted by whichever
# transport sent the call, for the caller to tell its user: the SDK's client
# keeps no status code of an HTTP error answer.
CALL_REFUSED: ContextVar[list[Refused] | None] = ContextVar("mcp_call_refused", default=None)
# The server-error statuses (5xx, and 429) the call was answered with, noted the same
# way: the SDK tells a 503 from a proxy only as "Server returned an error
# response", which would read as the server's own answer to the call.
CALL_FAILED_STATUSES: ContextVar[list[int] | None] = ContextVar(
    "mcp_call_failed_statuses", default=None
)


@contextlib.contextmanager
def _noted(where: ContextVar[list[T] | None]) -> Iterator[list[T]]:
    """Around one call: a list the call's requests note into (``where``)."""
    seen: list[T] = []
    token = where.set(seen)
    try:
        yield seen
    finally:
        where.reset(token)


def refusals_noted() -> contextlib.AbstractContextManager[list[Refused]]:
    """Around one call: the refusals its credential met."""
    return _noted(CALL_REFUSED)


def refusal_of(status: int, www_authenticate: str | None = None) -> Refused | None:
    """What an answer says of the credential it was sent with, if anything."""
    if status == 401:
        return Refused(401)
    if status != 403:
        return None
    # Parsed by the SDK's own reader of the challenge (RFC 6750 §3).
    challenge = httpx2.Response(403, headers={"WWW-Authenticate": www_authenticate or ""})
    if extract_field_from_www_auth(challenge, "error") != "insufficient_scope":
        return None
    return Refused(403, extract_scope_from_www_auth(challenge))


def failed_statuses_noted() -> contextlib.AbstractContextManager[list[int]]:
    """Around one call: the server-error statuses its requests were answered with."""
    return _noted(CALL_FAILED_STATUSES)


def note_failed_status(status: int) -> None:
    """A server error (5xx), or a 429 Too Many Requests, the call's request
    was answered with, whatever credential it carried (or none)."""
    failed = CALL_FAILED_STATUSES.get()
    if failed is not None and (status >= 500 or status == 429):
        failed.append(status)


def note_status(status: int, www_authenticate: str | None = None) -> None:
    note_failed_status(status)
    seen = CALL_REFUSED.get()
    refused = refusal_of(status, www_authenticate) if seen is not None else None
    if seen is not None and refused is not None:
        seen.append(refused)


class UpstreamAuth(httpx2.Auth):
    """Sets exactly one credential header on each request, and no other."""

    def __init__(self) -> None:
        self.default: Credential | None = None

    def auth_flow(
        self, request: httpx2.Request
    ) -> Generator[httpx2.Request, httpx2.Response, None]:
        credential = CALL_CREDENTIAL.get() or self.default
        request.headers.pop("authorization", None)
        if credential is not None:
            request.headers[credential.header] = credential.value
        response = yield request
        if credential is not None and credential is CALL_CREDENTIAL.get():
            note_status(response.status_code, response.headers.get("WWW-Authenticate"))
        else:  # a refusal is the call's own credential's; a server error is anyone's
            note_failed_status(response.status_code)


class NoUpstreamAuth(UpstreamAuth):
    """For requests that carry no call's credential whatever the context (an
    authorization server's endpoints: a request's own ``auth`` still applies)."""

    def auth_flow(
        self, request: httpx2.Request
    ) -> Generator[httpx2.Request, httpx2.Response, None]:
        request.headers.pop("authorization", None)
        yield request


class TooLarge(httpx2.TransportError):
    """An upstream answer broke the size rules: larger than the cap, or compressed."""


class _Capped(httpx2.AsyncByteStream):
    def __init__(self, inner: httpx2.AsyncByteStream, limit: int) -> None:
        self._inner = inner
        self._limit = limit

    async def __aiter__(self) -> AsyncIterator[bytes]:
        seen = 0
        async for chunk in self._inner:
            seen += len(chunk)
            if seen > self._limit:
                raise TooLarge(f"the answer exceeds {self._limit} bytes")
            yield chunk

    async def aclose(self) -> None:
        await self._inner.aclose()


class _ResponseStream(httpx2.AsyncByteStream):
    """An aiohttp response's body, as it arrives."""

    def __init__(self, response: aiohttp.ClientResponse, request: httpx2.Request) -> None:
        self._response = response
        self._request = request

    async def __aiter__(self) -> AsyncIterator[bytes]:
        with _mapped(self._request):
            async for chunk in self._response.content.iter_any():
                yield chunk

    async def aclose(self) -> None:
        # Back to the pool when the body was read to its end; a connection
        # left mid-body is closed by aiohttp, never reused.
        self._response.release()


# Hop-by-hop and framing headers: aiohttp writes its own from the URL and the body.
_NOT_PASSED = frozenset({"host", "content-length", "transfer-encoding", "connection"})


class CheckedTransport(httpx2.AsyncBaseTransport):
    """httpx2's transport over one aiohttp pool, with the SSRF rules above."""

    def __init__(self, policy: AddressPolicy, *, max_response_bytes: int) -> None:
        self._policy = policy
        self._max_response_bytes = max_response_bytes
        self._session: aiohttp.ClientSession | None = None
        self._urls: dict[str, yarl.URL] = {}  # checked, as aiohttp will read them
        self._timeouts: dict[tuple[float | None, ...], aiohttp.ClientTimeout] = {}

    def _pool(self) -> aiohttp.ClientSession:
        """The aiohttp session, made on first use inside the running loop."""
        if self._session is None or self._session.closed:
            self._session = checked_session(self._policy)
        return self._session

    def _url(self, request: httpx2.Request) -> yarl.URL:
        text = str(request.url)
        url = self._urls.get(text)
        if url is None:
            if request.url.scheme not in ("http", "https"):
                raise httpx2.UnsupportedProtocol(
                    f"{request.url.scheme} URLs are not allowed", request=request
                )
            try:
                url = checked_url(self._policy, text)
            except UpstreamRefused as exc:
                raise httpx2.ConnectError(
                    f"refused by the SSRF policy: {exc}", request=request
                ) from None
            if len(self._urls) >= 256:
                self._urls.clear()
            self._urls[text] = url
        return url

    def _timeout(self, request: httpx2.Request) -> aiohttp.ClientTimeout:
        # httpx2's read timeout is the longest silence between two reads, as
        # aiohttp's sock_read is; there is no total (an SSE stream may be long).
        given = request.extensions.get("timeout", {})
        key = (given.get("pool"), given.get("connect"), given.get("read"))
        timeout = self._timeouts.get(key)
        if timeout is None:
            timeout = aiohttp.ClientTimeout(
                total=None, connect=key[0], sock_connect=key[1], sock_read=key[2]
            )
            self._timeouts[key] = timeout
        return timeout

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        url = self._url(request)
        headers = [
            (name, value)
            for name, value in request.headers.multi_items()
            if name.lower() not in _NOT_PASSED
        ]
        body = await request.aread()
        with _mapped(request):
            response = await self._pool().request(
                request.method,
                url,
                headers=headers,
                data=body or None,
                allow_redirects=False,
                timeout=self._timeout(request),
            )
        try:
            refuse_coding(response.headers.get("Content-Encoding"), TooLarge)
        except TooLarge:
            response.close()
            raise
        stream: httpx2.AsyncByteStream = _ResponseStream(response, request)
        if "text/event-stream" not in response.headers.get("Content-Type", ""):
            limit = self._max_response_bytes
            if response.content_length is not None and response.content_length > limit:
                response.close()
                raise TooLarge(f"the answer exceeds {limit} bytes")
            stream = _Capped(stream, limit)
        extensions = {"http_version": b"HTTP/1.1"}
        if response.reason:
            extensions["reason_phrase"] = response.reason.encode("ascii", "replace")
        return httpx2.Response(
            status_code=response.status,
            headers=response.raw_headers,
            stream=stream,
            extensions=extensions,
        )

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()


def connect_failure(exc: aiohttp.ClientConnectorError) -> str:
    """What failed, in words: not aiohttp's own text, which names the SSL
    context ("ssl:default") for a plain http URL too and reads as a TLS
    failure."""
    error = exc.os_error
    reason = os.strerror(error.errno) if error.errno else type(error).__name__
    return f"cannot connect to {exc.host}:{exc.port} ({reason.lower()})"


@contextlib.contextmanager
def _mapped(request: httpx2.Request) -> Iterator[None]:
    """aiohttp's exceptions as the httpx2 ones the SDK and callers expect
    (the most specific first: aiohttp's timeouts are also `TimeoutError`s)."""
    try:
        yield
    except aiohttp.ClientConnectorError as exc:
        if isinstance(exc.os_error, UpstreamRefused):
            message = f"refused by the SSRF policy: {exc.os_error}"
            raise httpx2.ConnectError(message, request=request) from None
        raise httpx2.ConnectError(connect_failure(exc), request=request) from exc
    except aiohttp.ConnectionTimeoutError as exc:
        raise httpx2.ConnectTimeout(str(exc) or "timed out connecting", request=request) from exc
    except aiohttp.ServerTimeoutError as exc:
        raise httpx2.ReadTimeout(str(exc) or "timed out reading", request=request) from exc
    except (aiohttp.ServerDisconnectedError, aiohttp.ClientPayloadError) as exc:
        raise httpx2.RemoteProtocolError(str(exc), request=request) from exc
    except aiohttp.ClientResponseError as exc:  # a malformed status line or header
        raise httpx2.RemoteProtocolError(str(exc), request=request) from exc
    except aiohttp.InvalidURL as exc:
        raise httpx2.UnsupportedProtocol(str(exc), request=request) from exc
    except aiohttp.ClientError as exc:
        raise httpx2.NetworkError(str(exc) or type(exc).__name__, request=request) from exc


def checked_client(
    policy: AddressPolicy,
    auth: UpstreamAuth,
    *,
    connect_timeout_seconds: float,
    read_timeout_seconds: float,
    max_response_bytes: int,
) -> httpx2.AsyncClient:
    """An httpx2 client for one upstream connection (its own pool and credential)."""
    return httpx2.AsyncClient(
        transport=CheckedTransport(policy, max_response_bytes=max_response_bytes),
        auth=auth,
        timeout=httpx2.Timeout(read_timeout_seconds, connect=connect_timeout_seconds),
        headers={"Accept-Encoding": "identity"},
        # The jar itself: httpx2 copies a `Cookies` object into a fresh,
        # permissive jar, which kept one user's cookie for the next user's call.
        cookies=http.cookiejar.CookieJar(
            policy=http.cookiejar.DefaultCookiePolicy(allowed_domains=[])
        ),
        follow_redirects=False,
        trust_env=False,
    )

"""The HTTP client under every upstream call: SSRF-checked at connect time, capped.

One `aiohttp` connection pool serves every upstream, because under many
concurrent calls it keeps up with a bare aiohttp forwarder where httpx's own
pool, which scans every connection on every request, falls far behind, and
httpx over the `httpx-aiohttp` transport sits in between
(`bench/a2a_forwarding.py`; figures in docs/performance.md). So:

* the hot paths (same-version pass-through, `gateway/agents/passthrough.py`;
  an A2A 1.0 JSON-RPC stream, `gateway/agents/upstream_streams.py`) call
  `UpstreamHTTP.post()` and `.post_stream()`, which are aiohttp directly;
* the official SDKs' client transports need an `httpx.AsyncClient`; theirs
  (`UpstreamHTTP.httpx`) runs over the same aiohttp pool through
  `httpx_aiohttp.AiohttpTransport`.

The SSRF rules hold at connect time, for both:

* host names are resolved by `SafeResolver`, which checks *every* address
  under the registry's `AddressPolicy`, and aiohttp connects to exactly those
  addresses: there is no second lookup for a rebinding DNS server to answer
  differently. Answers are cached for `RESOLVE_CACHE_SECONDS`, each checked;
* aiohttp skips the resolver for IP literals, so `check_url()` checks those
  (and the scheme, and that the URL carries no credentials) before a request;
* aiohttp pools connections by host *name*, so a connection whose certificate
  was checked for one name never carries a request for another name that
  happens to share the address.

Answers are capped while they stream (an SSE stream gets its own, larger cap)
and must not be content-coded: the gateway asks for `identity`, so a
compressed answer cannot expand past the cap after it was counted. No cookie
jar (one user's session must not ride on another's call), no redirects, no
proxy from the environment. Every request made for a delegation carries its
trace (`traceparent`, made by `adapters.trace_context`) and no other.
"""

from __future__ import annotations

import contextlib
import http.cookiejar
import ipaddress
import socket
from collections.abc import AsyncGenerator, AsyncIterator, Mapping
from dataclasses import dataclass

import aiohttp
import httpx
import yarl
from aiohttp.abc import AbstractResolver, ResolveResult
from httpx_aiohttp import AiohttpTransport

from adapters.core_check import require_core
from adapters.spans import traced_session_configs
from adapters.trace_context import TracedRequest
from registry.ssrf import AddressPolicy, AddressRefused
from registry.tls import client_tls

RESOLVE_CACHE_SECONDS = 5
MAX_CONNECTIONS = 256
# An idle pooled connection is closed by us before the upstream's server
# closes it (uvicorn and Node close after 5 s idle; aiohttp would keep it
# 15 s). Reused just as that server closes it, a request failed half-written
# ("Cannot write to closing transport"): the closing was in flight, or not
# yet read by a busy loop. Seen under load in bench.flow_load.
IDLE_CONNECTION_SECONDS = 3.0
# Without `identity`, aiohttp and httpx both ask for gzip; the cap must count
# the bytes the gateway will hold, not the compressed ones.
NO_CODING = {"Accept-Encoding": "identity"}


class UpstreamRefused(OSError):
    """The URL, or an address its host resolves to, is one the SSRF policy forbids.

    An `OSError`, so that aiohttp reports it from the resolver as a connection
    error (`ClientConnectorDNSError`) with this as its cause.
    """


class UpstreamBadAnswer(httpx.TransportError):
    """The upstream's answer broke the gateway's rules (size, coding)."""


class UpstreamTooLarge(UpstreamBadAnswer):
    """The upstream sent more than the cap allows."""


class SafeResolver(AbstractResolver):
    """aiohttp's resolver, with every answer checked under the SSRF policy."""

    def __init__(self, policy: AddressPolicy) -> None:
        self._policy = policy
        self._inner = aiohttp.ThreadedResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        try:
            self._policy.check_host(host)
            answers = await self._inner.resolve(host, port, family)
            for answer in answers:
                # `check_address` takes an ip_address; the answer's host is one.
                self._policy.check_address(ipaddress.ip_address(answer["host"].split("%", 1)[0]))
        except AddressRefused as exc:
            raise UpstreamRefused(f"{host}: {exc}") from None
        return answers

    async def close(self) -> None:
        await self._inner.close()


# What `UpstreamHTTP.post_stream` yields: the answer's head, then its lines.
Streamed = aiohttp.ClientResponse | bytes


@dataclass(frozen=True)
class Answer:
    status: int
    content_type: str
    body: bytes
    # An authentication challenge (RFC 6750 §3), for a refused credential.
    www_authenticate: str | None = None


def checked_session(policy: AddressPolicy) -> aiohttp.ClientSession:
    """An aiohttp pool under the SSRF rules: every resolved address checked
    (`SafeResolver`, connect-time, so a rebinding DNS server gets no second
    answer), no cookies kept, no proxy from the environment, bodies as sent
    (coded answers are refused by the callers, so caps count real bytes).
    Each request carries the W3C trace headers of the delegation it is made
    for, and only those (`adapters.trace_context`). Made inside the running
    loop."""
    connector = aiohttp.TCPConnector(
        resolver=SafeResolver(policy),
        limit=MAX_CONNECTIONS,
        ttl_dns_cache=RESOLVE_CACHE_SECONDS,
        keepalive_timeout=IDLE_CONNECTION_SECONDS,
    )
    return aiohttp.ClientSession(
        connector=connector,
        cookie_jar=aiohttp.DummyCookieJar(),
        trust_env=False,
        auto_decompress=False,
        request_class=TracedRequest,
        # With tracing on, a CLIENT span per request of a delegation.
        trace_configs=traced_session_configs(),
    )


class UpstreamHTTP:
    """The shared pool; created once per gateway, closed on shutdown."""

    def __init__(
        self,
        policy: AddressPolicy,
        *,
        connect_timeout_seconds: float,
        idle_timeout_seconds: float,
        max_response_bytes: int,
        max_stream_bytes: int,
        default_headers: Mapping[str, str] | None = None,
    ) -> None:
        self._policy = policy
        self._connect_timeout = connect_timeout_seconds
        self._idle_timeout = idle_timeout_seconds
        self.max_response_bytes = max_response_bytes
        self.max_stream_bytes = max_stream_bytes
        self._checked: set[str] = set()
        self._session: aiohttp.ClientSession | None = None
        self.httpx = httpx.AsyncClient(
            transport=_GuardedTransport(
                self,
                AiohttpTransport(client=self.session, verify=client_tls()),
                max_response_bytes=max_response_bytes,
                max_stream_bytes=max_stream_bytes,
            ),
            # The read timeout of a call is set per call; this default is how
            # long a stream may stay silent between events.
            timeout=httpx.Timeout(idle_timeout_seconds, connect=connect_timeout_seconds),
            headers={**NO_CODING, **(default_headers or {})},
            cookies=_no_cookies(),
            follow_redirects=False,  # an upstream does not get to send us elsewhere
            trust_env=False,  # no proxy variable may route calls past the checks
        )

    def session(self) -> aiohttp.ClientSession:
        """The aiohttp session, made on first use inside the running loop."""
        if self._session is None or self._session.closed:
            self._session = checked_session(self._policy)
        return self._session

    def check_url(self, url: str) -> None:
        """What the resolver cannot see: scheme, credentials, IP-literal hosts."""
        if url in self._checked:
            return
        checked_url(self._policy, url)
        if len(self._checked) > 4096:
            self._checked.clear()
        self._checked.add(url)

    @contextlib.asynccontextmanager
    async def _posted(
        self,
        url: str,
        body: bytes,
        headers: Mapping[str, str],
        limits: aiohttp.ClientTimeout,
    ) -> AsyncIterator[aiohttp.ClientResponse]:
        """The POST both passes make: to a URL the gateway may reach, not
        redirected, answered uncompressed (`refuse_coding`)."""
        self.check_url(url)
        async with self.session().post(
            url,
            data=body,
            headers={**NO_CODING, **headers},
            timeout=limits,
            allow_redirects=False,
        ) as response:
            refuse_coding(response.headers.get("Content-Encoding"))
            yield response

    async def post(
        self, url: str, body: bytes, headers: Mapping[str, str], *, timeout_seconds: float
    ) -> Answer:
        """POST and read the whole (capped) answer. Raises `UpstreamRefused`,
        `UpstreamBadAnswer`, `aiohttp.ClientError` or `TimeoutError`."""
        require_core("an A2A request (pass-through)")
        timeout = aiohttp.ClientTimeout(total=timeout_seconds, sock_connect=self._connect_timeout)
        async with self._posted(url, body, headers, timeout) as response:
            body = await read_capped(response, self.max_response_bytes)
            challenge = response.headers.get("WWW-Authenticate")
            return Answer(response.status, response.content_type, body, challenge)

    async def post_stream(
        self, url: str, body: bytes, headers: Mapping[str, str]
    ) -> AsyncGenerator[Streamed]:
        """POST and read the answer as it comes: first its head, then its
        body line by line (without the line's end: CR LF, LF or CR, as SSE
        reads them), capped at ``max_stream_bytes`` in all, each read waiting
        at most the idle timeout. Closing the generator closes the connection.
        Raises as `post` does."""
        require_core("an A2A stream (pass-through)")
        timeout = aiohttp.ClientTimeout(
            total=None, sock_connect=self._connect_timeout, sock_read=self._idle_timeout
        )
        async with self._posted(url, body, headers, timeout) as response:
            yield response
            limit, seen, pending = self.max_stream_bytes, 0, b""
            async for chunk in response.content.iter_any():
                seen += len(chunk)
                if seen > limit:
                    raise UpstreamTooLarge(f"the event stream exceeds {limit} bytes")
                lines = (pending + chunk).splitlines(keepends=True)
                # The last line is whole once it ends in LF; a CR may be half of CR LF.
                pending = b"" if lines[-1].endswith(b"\n") else lines.pop()
                for line in lines:
                    yield line.rstrip(b"\r\n")
            if pending:
                yield pending.rstrip(b"\r\n")

    async def aclose(self) -> None:
        await self.httpx.aclose()
        if self._session is not None:
            await self._session.close()


def checked_url(policy: AddressPolicy, url: str) -> yarl.URL:
    """``url`` as aiohttp will read it, with what the resolver cannot see
    checked: the scheme, credentials in the URL, an IP-literal host. Raises
    `UpstreamRefused`. Give aiohttp the URL returned, so the host checked is
    the host connected to."""
    try:
        # The URL as aiohttp will read it (yarl), not as urllib does: yarl
        # folds Unicode hosts to ASCII ("①②⑦.0.0.1", "127。0。0。1" become
        # 127.0.0.1), and aiohttp then connects to an IP literal without
        # asking the resolver.
        parsed = yarl.URL(url)
        if parsed.scheme not in ("http", "https"):
            raise AddressRefused("only http and https URLs are allowed")
        if parsed.raw_user is not None or parsed.raw_password is not None:
            raise AddressRefused("credentials in URLs are not allowed")
        policy.check_host(parsed.raw_host or "")  # checks an IP literal
    except (AddressRefused, ValueError, TypeError) as exc:
        raise UpstreamRefused(f"{url}: {exc}") from None
    return parsed


def refuse_coding(coding: str | None, error: type[Exception] = UpstreamBadAnswer) -> None:
    """Asked for identity: a compressed answer would be counted by the cap
    before it expands (a 48 KB gzip answer is 50 MB in memory)."""
    if coding and coding.strip().lower() != "identity":
        raise error(
            f"the answer is {coding.strip().lower()}-coded though the gateway asked for none"
        )


async def read_capped(
    response: aiohttp.ClientResponse, limit: int, error: type[Exception] = UpstreamTooLarge
) -> bytes:
    """The whole body, refused (``error``) once it is past ``limit`` bytes,
    or at once if it says it will be."""
    if response.content_length is not None and response.content_length > limit:
        raise error(f"the answer exceeds {limit} bytes")
    chunks: list[bytes] = []
    seen = 0
    async for chunk in response.content.iter_any():
        seen += len(chunk)
        if seen > limit:
            raise error(f"the answer exceeds {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


class _CappedStream(httpx.AsyncByteStream):
    def __init__(self, inner: httpx.AsyncByteStream, limit: int, what: str) -> None:
        self._inner = inner
        self._limit = limit
        self._what = what

    async def __aiter__(self) -> AsyncIterator[bytes]:
        seen = 0
        async for chunk in self._inner:
            seen += len(chunk)
            if seen > self._limit:
                raise UpstreamTooLarge(f"the {self._what} exceeds {self._limit} bytes")
            yield chunk

    async def aclose(self) -> None:
        await self._inner.aclose()


class _GuardedTransport(httpx.AsyncBaseTransport):
    """The httpx side: URL checks before, caps and the coding rule after."""

    def __init__(
        self,
        http: UpstreamHTTP,
        inner: httpx.AsyncBaseTransport,
        *,
        max_response_bytes: int,
        max_stream_bytes: int,
    ) -> None:
        self._http = http
        self._inner = inner
        self._max_response_bytes = max_response_bytes
        self._max_stream_bytes = max_stream_bytes

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        require_core("an upstream HTTP request (A2A, a vendor agent)")
        try:
            self._http.check_url(str(request.url))
        except UpstreamRefused as exc:
            raise httpx.ConnectError(str(exc), request=request) from exc
        response = await self._inner.handle_async_request(request)
        try:
            refuse_coding(response.headers.get("content-encoding"))
        except UpstreamBadAnswer:
            await response.aclose()
            raise
        streaming = "text/event-stream" in request.headers.get("accept", "")
        limit = self._max_stream_bytes if streaming else self._max_response_bytes
        what = "event stream" if streaming else "answer"
        assert isinstance(response.stream, httpx.AsyncByteStream)
        response.stream = _CappedStream(response.stream, limit, what)
        return response

    async def aclose(self) -> None:
        await self._inner.aclose()


def _no_cookies() -> http.cookiejar.CookieJar:
    # The jar itself, not `httpx.Cookies(jar)`: httpx copies a Cookies
    # object's cookies into a fresh, permissive jar and drops its policy, so
    # one upstream's Set-Cookie was kept and sent on every later call.
    return http.cookiejar.CookieJar(policy=http.cookiejar.DefaultCookiePolicy(allowed_domains=[]))

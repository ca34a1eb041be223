"""The HTTP client under every call to an MCP server: SSRF-checked at connect time.

The official `mcp` SDK's Streamable HTTP transport takes an `httpx2`
client, not the `httpx` one `adapters.http.UpstreamHTTP` wraps, so MCP
traffic has its own client, built to the same rules:

* every host name is resolved here and *every* address checked under the
  registry's `AddressPolicy`; the connection goes to a checked address, so a
  rebinding DNS server gets no second answer (`CheckedBackend`, an httpcore2
  network backend). TLS still verifies the certificate against the name:
  httpcore2 passes the origin's host name as SNI, and pools by name;
* no proxy from the environment, no cookies kept, redirects are never
  followed by the client (the SDK follows same-origin ones itself, and
  those connect through the same checks);
* non-streamed answers are capped; the SDK caps each SSE event.

The credential for an upstream is added by `UpstreamAuth`, from the call's
`CALL_CREDENTIAL` (set by the federation around one call, e.g. a token
minted for that user) or else the connection's own default. Nothing from a
caller's inbound request is ever forwarded.
"""

from __future__ import annotations

import contextlib
import http.cookiejar
import ipaddress
import socket
from collections.abc import AsyncIterator, Generator, Iterable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass

import anyio
import httpcore2
import httpx2

from registry.ssrf import AddressPolicy, AddressRefused, IPAddress

MAX_CONNECTIONS = 256


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
        yield request


class CheckedBackend(httpcore2.AsyncNetworkBackend):
    """httpcore2's network backend with the SSRF policy applied at connect time."""

    def __init__(self, policy: AddressPolicy) -> None:
        self._policy = policy
        self._inner = httpcore2.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore2's interface
        local_address: str | None = None,
        socket_options: Iterable[httpcore2.SOCKET_OPTION] | None = None,
    ) -> httpcore2.AsyncNetworkStream:
        addresses = await self.checked_addresses(host, port, timeout)
        last: Exception | None = None
        for address in addresses:
            try:
                return await self._inner.connect_tcp(
                    str(address), port, timeout, local_address, socket_options
                )
            except (httpcore2.ConnectError, httpcore2.ConnectTimeout) as exc:
                last = exc
        assert last is not None
        raise last

    async def checked_addresses(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 - passed down from connect_tcp
    ) -> list[IPAddress]:
        try:
            literal = self._policy.check_host(host)
            if literal is not None:
                return [literal]
            with anyio.fail_after(timeout):
                infos = await anyio.getaddrinfo(host, port, type=socket.SOCK_STREAM)
            addresses: list[IPAddress] = []
            for *_, sockaddr in infos:
                address = ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])
                self._policy.check_address(address)
                if address not in addresses:
                    addresses.append(address)
        except AddressRefused as exc:
            raise httpcore2.ConnectError(f"{host}: refused by the SSRF policy: {exc}") from None
        except (OSError, UnicodeError) as exc:
            raise httpcore2.ConnectError(f"{host} could not be resolved: {exc}") from None
        except TimeoutError:
            raise httpcore2.ConnectTimeout(f"{host} could not be resolved in time") from None
        if not addresses:
            raise httpcore2.ConnectError(f"{host} resolved to no address")
        return addresses

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore2's interface
        socket_options: Iterable[httpcore2.SOCKET_OPTION] | None = None,
    ) -> httpcore2.AsyncNetworkStream:
        raise httpcore2.ConnectError("unix sockets are not reachable through the gateway")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


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


class CheckedTransport(httpx2.AsyncHTTPTransport):
    def __init__(self, policy: AddressPolicy, *, max_response_bytes: int) -> None:
        super().__init__(
            trust_env=False,
            limits=httpx2.Limits(max_connections=MAX_CONNECTIONS, max_keepalive_connections=64),
        )
        # httpx2 builds its pool without a way to pass a network backend;
        # tests/adapters/test_mcp_http.py fails if this stops taking effect.
        self._pool._network_backend = CheckedBackend(policy)
        self._max_response_bytes = max_response_bytes

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        scheme = request.url.scheme
        if scheme not in ("http", "https"):
            raise httpx2.UnsupportedProtocol(f"{scheme} URLs are not allowed", request=request)
        response = await super().handle_async_request(request)
        coding = response.headers.get("content-encoding", "").strip().lower()
        if coding and coding != "identity":
            # Asked for identity: a compressed answer would be counted by the
            # cap before it expands (a 48 KB gzip answer is 50 MB in memory).
            await response.aclose()
            raise TooLarge(f"the answer is {coding}-coded though the gateway asked for none")
        if "text/event-stream" not in response.headers.get("content-type", ""):
            assert isinstance(response.stream, httpx2.AsyncByteStream)
            response.stream = _Capped(response.stream, self._max_response_bytes)
        return response


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
        cookies=httpx2.Cookies(
            http.cookiejar.CookieJar(policy=http.cookiejar.DefaultCookiePolicy(allowed_domains=[]))
        ),
        follow_redirects=False,
        trust_env=False,
    )

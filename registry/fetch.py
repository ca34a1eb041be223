"""Fetching documents from URLs that registrants chose, without becoming their proxy.

Every request: http(s) only, no credentials in the URL, DNS resolved here and
*every* answer checked with `AddressPolicy`, then the connection is made to the
checked address itself (Host header and TLS SNI keep the name, so certificates
still verify against it). That is the connect-time check: there is no second
lookup for a rebinding DNS server to answer differently. Redirects are followed
by hand, each hop validated the same way, and https never downgrades to http.
Bodies are capped while streaming and the whole exchange has one deadline.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import socket
from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin, urlsplit, urlunsplit

import httpx

from registry.ssrf import AddressPolicy, AddressRefused, IPAddress
from registry.tls import client_tls

_REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})


class FetchError(Exception):
    """A fetch failed; ``str()`` is safe to show to the caller."""


class FetchRefused(FetchError):
    """The URL (or a redirect) points somewhere the policy forbids."""


class FetchFailed(FetchError):
    """The remote end could not be reached or answered badly."""


@dataclass(frozen=True)
class FetchLimits:
    timeout_seconds: float = 5.0
    max_bytes: int = 512 * 1024
    max_redirects: int = 3


@dataclass(frozen=True)
class FetchedDocument:
    url: str  # the final URL, after redirects
    status: int
    body: bytes

    def json(self) -> Any:
        try:
            return json.loads(self.body)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise FetchFailed(f"{self.url} did not return valid JSON: {exc}") from None


class SafeFetcher:
    """GETs a URL under an `AddressPolicy`; one instance is shared and reused."""

    def __init__(self, policy: AddressPolicy, limits: FetchLimits | None = None) -> None:
        self.policy = policy
        self.limits = limits or FetchLimits()
        # Redirects are ours to follow; trust_env off so no proxy variable can
        # route a registrant's URL somewhere the checks did not see.
        # No keep-alive: httpx pools by address, not by TLS server name, so a
        # reused connection could carry a request for another hostname whose
        # certificate was never checked. Registry fetches are rare; safety wins.
        self._client = httpx.AsyncClient(
            follow_redirects=False,
            trust_env=False,
            verify=client_tls(),
            limits=httpx.Limits(max_keepalive_connections=0),
        )

    async def aclose(self) -> None:
        await self._client.aclose()

    async def get(self, url: str, *, accept: str = "application/json") -> FetchedDocument:
        try:
            async with asyncio.timeout(self.limits.timeout_seconds):
                return await self._follow(url, accept)
        except TimeoutError:
            raise FetchFailed(
                f"{url} did not answer within {self.limits.timeout_seconds:g}s"
            ) from None

    async def _follow(self, url: str, accept: str) -> FetchedDocument:
        current = url
        for _hop in range(self.limits.max_redirects + 1):
            status, headers, body = await self._get_once(current, accept)
            if status not in _REDIRECT_STATUSES:
                return FetchedDocument(url=current, status=status, body=body)
            location = headers.get("location")
            if not location:
                raise FetchFailed(f"{current} redirected without a Location")
            try:
                target = urljoin(current, location)
                downgrade = (
                    urlsplit(current).scheme == "https" and urlsplit(target).scheme != "https"
                )
            except ValueError:
                raise FetchFailed(f"{current} redirected to an invalid URL") from None
            if downgrade:
                raise FetchRefused(f"{current} redirected from https to {target}")
            current = target
        raise FetchFailed(f"{url}: more than {self.limits.max_redirects} redirects")

    async def _get_once(self, url: str, accept: str) -> tuple[int, httpx.Headers, bytes]:
        target = await self.resolve(url)
        try:
            request = self._client.build_request(
                "GET",
                target.pinned_url,
                # identity: the body is read raw (and capped) below, so it must not be
                # compressed; it also keeps decompression bombs out.
                headers={
                    "Host": target.host_header,
                    "Accept": accept,
                    "Accept-Encoding": "identity",
                },
                extensions={"sni_hostname": target.hostname} if target.scheme == "https" else {},
            )
        except httpx.InvalidURL:
            raise FetchRefused(f"{url}: invalid URL") from None
        try:
            response = await self._client.send(request, stream=True)
        except httpx.HTTPError as exc:
            raise FetchFailed(f"{url}: {_transport_failure(exc)}") from None
        try:
            declared = response.headers.get("content-length")
            if declared and declared.isdigit() and int(declared) > self.limits.max_bytes:
                raise FetchFailed(f"{url}: body larger than {self.limits.max_bytes} bytes")
            chunks: list[bytes] = []
            size = 0
            async for chunk in response.aiter_raw():
                size += len(chunk)
                if size > self.limits.max_bytes:
                    raise FetchFailed(f"{url}: body larger than {self.limits.max_bytes} bytes")
                chunks.append(chunk)
        except httpx.HTTPError as exc:
            raise FetchFailed(f"{url}: {_transport_failure(exc)}") from None
        finally:
            await response.aclose()
        return response.status_code, response.headers, b"".join(chunks)

    async def resolve(self, url: str) -> PinnedTarget:
        """Validate ``url`` and pick the checked address to connect to."""
        try:
            parts = urlsplit(url)
        except ValueError as exc:
            raise FetchRefused(f"{url}: invalid URL ({exc})") from None
        if parts.scheme not in ("http", "https"):
            raise FetchRefused(f"{url}: only http and https URLs are allowed")
        if parts.username is not None or parts.password is not None:
            raise FetchRefused(f"{url}: credentials in URLs are not allowed")
        try:
            port = parts.port
            if port == 0:
                raise ValueError("port 0")
        except ValueError:
            raise FetchRefused(f"{url}: invalid port") from None
        if port is None:
            port = 443 if parts.scheme == "https" else 80
        hostname = parts.hostname or ""
        if not hostname.isascii():
            # The A-label is what DNS, the Host header and SNI all need.
            try:
                hostname = hostname.encode("idna").decode("ascii")
            except UnicodeError:
                raise FetchRefused(f"{url}: invalid hostname") from None
        try:
            literal = self.policy.check_host(hostname)
            addresses = [literal] if literal else await _resolve(hostname, port)
            for address in addresses:
                self.policy.check_address(address)
        except AddressRefused as exc:
            raise FetchRefused(f"{url}: {exc}") from None
        return PinnedTarget.build(parts.scheme, hostname, port, addresses[0], parts)


@dataclass(frozen=True)
class PinnedTarget:
    scheme: str
    hostname: str
    host_header: str
    pinned_url: str

    @classmethod
    def build(
        cls, scheme: str, hostname: str, port: int, address: IPAddress, parts: Any
    ) -> PinnedTarget:
        default_port = 443 if scheme == "https" else 80
        name = f"[{hostname}]" if ":" in hostname else hostname
        host_header = name if port == default_port else f"{name}:{port}"
        ip = f"[{address}]" if address.version == 6 else str(address)
        pinned = urlunsplit((scheme, f"{ip}:{port}", parts.path or "/", parts.query, ""))
        return cls(scheme=scheme, hostname=hostname, host_header=host_header, pinned_url=pinned)


async def _resolve(hostname: str, port: int) -> list[IPAddress]:
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(hostname, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise FetchFailed(f"{hostname} could not be resolved: {exc}") from None
    addresses: list[IPAddress] = []
    for _family, _type, _proto, _canon, sockaddr in infos:
        address = ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])
        if address not in addresses:
            addresses.append(address)
    if not addresses:
        raise FetchFailed(f"{hostname} resolved to no address")
    return addresses


def _transport_failure(exc: httpx.HTTPError) -> str:
    """What failed, in words: not the client library's class name, and not the
    connector's own text (aiohttp says "ssl:default" for a plain-http URL)."""
    if isinstance(exc, httpx.ConnectTimeout):
        return "timed out connecting"
    if isinstance(exc, httpx.ConnectError):
        refused = any(
            isinstance(c, ConnectionRefusedError) or "refused" in str(c).lower()
            for c in _chain(exc)
        )
        return "connection refused: nothing listens there" if refused else "could not connect"
    if isinstance(exc, httpx.TimeoutException):
        return "timed out waiting for the answer"
    if isinstance(exc, (httpx.RemoteProtocolError, httpx.ReadError)):
        return "the connection was closed before a whole answer came"
    return "the request failed"


def _chain(exc: BaseException) -> list[BaseException]:
    chain: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and len(chain) < 16:
        chain.append(current)
        current = current.__cause__ or current.__context__
    return chain

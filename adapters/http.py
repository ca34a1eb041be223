"""The HTTP transport under every upstream call: SSRF-checked, pinned, capped.

The official SDKs' client transports take an `httpx.AsyncClient`; what they
send goes through `PinnedTransport`, which for every request

* resolves the host and checks every address under the registry's
  `AddressPolicy` (`SafeFetcher.resolve`), then connects to the checked
  address itself -- there is no second lookup for a rebinding DNS server to
  answer differently -- keeping the name in `Host` and the TLS SNI, so
  certificates still verify against it;
* keeps one connection pool per TLS server name: httpx pools by address, so a
  connection whose certificate was checked for one hostname never carries a
  request for another name on the same IP;
* caps the response body while it streams (an SSE stream gets its own, larger
  cap), so an upstream cannot exhaust the gateway's memory.

Resolutions are cached for a few seconds: a fresh lookup per call would put a
resolver round trip on the hot path, and the cached answer was checked.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable

import httpx

from registry.fetch import FetchError, PinnedTarget, SafeFetcher

RESOLVE_CACHE_SECONDS = 5.0


class UpstreamRefused(httpx.TransportError):
    """The URL points somewhere the SSRF policy forbids."""


class UpstreamTooLarge(httpx.TransportError):
    """The upstream sent more than the cap allows."""


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


class PinnedTransport(httpx.AsyncBaseTransport):
    def __init__(
        self,
        fetcher: SafeFetcher,
        *,
        max_response_bytes: int,
        max_stream_bytes: int,
        inner: Callable[[], httpx.AsyncBaseTransport] | None = None,
    ) -> None:
        self._fetcher = fetcher
        self._max_response_bytes = max_response_bytes
        self._max_stream_bytes = max_stream_bytes
        self._make_inner = inner or _default_inner
        self._pools: dict[str, httpx.AsyncBaseTransport] = {}
        self._resolved: dict[str, tuple[float, PinnedTarget]] = {}

    async def _target(self, url: str) -> PinnedTarget:
        now = time.monotonic()
        cached = self._resolved.get(url)
        if cached is not None and cached[0] > now:
            return cached[1]
        try:
            target = await self._fetcher.resolve(url)
        except FetchError as exc:
            raise UpstreamRefused(str(exc)) from None
        if len(self._resolved) > 4096:
            self._resolved.clear()
        self._resolved[url] = (now + RESOLVE_CACHE_SECONDS, target)
        return target

    def _pool(self, target: PinnedTarget) -> httpx.AsyncBaseTransport:
        key = target.hostname if target.scheme == "https" else ""
        pool = self._pools.get(key)
        if pool is None:
            pool = self._pools[key] = self._make_inner()
        return pool

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        origin = f"{request.url.scheme}://{request.url.netloc.decode('ascii')}/"
        target = await self._target(origin)
        pinned = httpx.URL(target.pinned_url).copy_with(raw_path=request.url.raw_path)
        headers = httpx.Headers(request.headers)
        headers["Host"] = target.host_header
        extensions = dict(request.extensions)
        if target.scheme == "https":
            extensions["sni_hostname"] = target.hostname
        forwarded = httpx.Request(
            request.method,
            pinned,
            headers=headers,
            stream=request.stream,
            extensions=extensions,
        )
        response = await self._pool(target).handle_async_request(forwarded)
        streaming = "text/event-stream" in request.headers.get("accept", "")
        limit = self._max_stream_bytes if streaming else self._max_response_bytes
        what = "event stream" if streaming else "answer"
        assert isinstance(response.stream, httpx.AsyncByteStream)
        response.stream = _CappedStream(response.stream, limit, what)
        return response

    async def aclose(self) -> None:
        for pool in self._pools.values():
            await pool.aclose()
        self._pools.clear()


def _default_inner() -> httpx.AsyncBaseTransport:
    return httpx.AsyncHTTPTransport(
        limits=httpx.Limits(max_connections=256, max_keepalive_connections=64)
    )

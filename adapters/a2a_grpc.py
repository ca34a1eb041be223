"""gRPC channels to A2A agents whose cards offer gRPC (A2A 1.0 §10).

The SDK's `GrpcTransport` takes a channel; this module makes it under the
same rules as every other upstream connection (`adapters.http`):

* the target's host is checked and resolved here, every address checked
  under the SSRF policy (`registry.ssrf.AddressPolicy`), and the channel
  dials the checked address itself (`ipv4:`/`ipv6:` targets), so gRPC's own
  resolver never picks another one (DNS rebinding); the authority and the
  TLS name stay the card's host;
* TLS unless the card says `grpc://` -- a bare `host:port` (as A2A cards
  write gRPC targets) gets TLS, except on a loopback address, which only a
  `--dev` gateway may reach at all;
* answers are capped at the gateway's upstream size limit per message; no
  proxy from the environment is used (`grpc.enable_http_proxy`: 0);
* a stream (`SendStreamingMessage`, `SubscribeToTask`) is held to the same
  caps as an HTTP one (`stream_max_bytes` in all, `stream_idle_seconds`
  between events: `StreamCaps`), which the HTTP pool enforces on its bytes
  and a gRPC channel knows nothing of.

The channel is pinned to the address resolved when the agent's transport is
made (`adapters.a2a.A2AUpstreams`: once per card).
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import grpc
import grpc.aio
import httpx
from a2a.client.transports.grpc import GrpcTransport
from a2a.compat.v0_3.grpc_transport import CompatGrpcTransport
from a2a.types import StreamResponse

from adapters.core_check import require_core
from adapters.http import SafeResolver, UpstreamRefused, UpstreamTooLarge
from registry.ssrf import AddressPolicy, IPAddress


@dataclass(frozen=True)
class GrpcTarget:
    host: str  # as the card names it (brackets stripped from an IPv6 literal)
    port: int
    tls: bool | None  # None: as the address decides (bare host:port)

    @property
    def authority(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


def parse_target(url: str) -> GrpcTarget:
    """`grpc://host:port`, `grpcs://host:port` or a bare `host:port`."""
    tls: bool | None = None
    if "://" in url:
        parts = urlsplit(url)
        if parts.scheme not in ("grpc", "grpcs"):
            raise UpstreamRefused(f"{url}: not a gRPC target")
        tls = parts.scheme == "grpcs"
        url = parts.netloc
    parts = urlsplit("//" + url)
    try:
        port = parts.port
    except ValueError:
        port = None
    if not parts.hostname or port is None:
        raise UpstreamRefused(f"{url}: a gRPC target is host:port")
    return GrpcTarget(parts.hostname, port, tls)


async def checked_addresses(target: GrpcTarget, policy: AddressPolicy) -> list[IPAddress]:
    """The target's addresses, each allowed by ``policy`` (`SafeResolver`, the
    check every HTTP upstream connection makes); `UpstreamRefused` if any is
    not (an answer that mixes allowed and forbidden ones is refused whole)."""
    resolver = SafeResolver(policy)
    try:
        answers = await resolver.resolve(target.host, target.port, socket.AF_UNSPEC)
    except OSError as exc:  # no such name (UpstreamRefused is an OSError too)
        if isinstance(exc, UpstreamRefused):
            raise
        raise UpstreamRefused(f"{target.host}: {exc.strerror or exc}") from None
    finally:
        await resolver.close()
    found: list[IPAddress] = []
    for answer in answers:
        address = ipaddress.ip_address(answer["host"].split("%", 1)[0])
        if address not in found:
            found.append(address)
    if not found:
        raise UpstreamRefused(f"{target.host}: no address")
    return found


async def open_channel(url: str, policy: AddressPolicy, *, max_bytes: int) -> grpc.aio.Channel:
    """A channel to the card's gRPC target ``url``, on a checked address."""
    target = parse_target(url)
    address = (await checked_addresses(target, policy))[0]
    dial = (
        f"ipv6:[{address}]:{target.port}"
        if address.version == 6
        else f"ipv4:{address}:{target.port}"
    )
    options: list[tuple[str, str | int]] = [
        ("grpc.default_authority", target.authority),
        ("grpc.max_receive_message_length", max_bytes),
        ("grpc.enable_http_proxy", 0),
    ]
    tls = target.tls if target.tls is not None else not address.is_loopback
    if tls:
        options.append(("grpc.ssl_target_name_override", target.host))
        return grpc.aio.secure_channel(
            dial, grpc.ssl_channel_credentials(), options=options, interceptors=_CHECKED
        )
    return grpc.aio.insecure_channel(dial, options=options, interceptors=_CHECKED)


# grpc ships no type hints: its interceptor bases are `Any` to mypy.
_Unary: Any = grpc.aio.UnaryUnaryClientInterceptor
_Streamed: Any = grpc.aio.UnaryStreamClientInterceptor


class _InsideTheCore(_Unary, _Streamed):  # type: ignore[misc]
    """Each gRPC call to an agent, checked to be the core's (`adapters.core_check`)."""

    async def intercept_unary_unary(
        self, continuation: Any, client_call_details: Any, request: Any
    ) -> Any:
        require_core("an A2A request (gRPC)")
        return await continuation(client_call_details, request)

    async def intercept_unary_stream(
        self, continuation: Any, client_call_details: Any, request: Any
    ) -> Any:
        require_core("an A2A stream (gRPC)")
        return await continuation(client_call_details, request)


_CHECKED = [_InsideTheCore()]


@dataclass(frozen=True)
class StreamCaps:
    max_bytes: int
    idle_seconds: float

    async def apply(self, events: AsyncIterator[StreamResponse]) -> AsyncGenerator[StreamResponse]:
        """``events`` until they pass ``max_bytes`` in all (UpstreamTooLarge)
        or none comes for ``idle_seconds`` (httpx.ReadTimeout): the errors an
        HTTP stream over the capped pool raises, so they are answered alike."""
        seen = 0
        try:
            while True:
                try:
                    async with asyncio.timeout(self.idle_seconds):
                        event = await anext(events)
                except StopAsyncIteration:
                    return
                except TimeoutError:
                    raise httpx.ReadTimeout(
                        f"no event from the agent for {self.idle_seconds:g} s"
                    ) from None
                seen += event.ByteSize()
                if seen > self.max_bytes:
                    raise UpstreamTooLarge(f"the stream exceeds {self.max_bytes} bytes")
                yield event
        finally:
            closing = getattr(events, "aclose", None)
            if closing is not None:
                await closing()


class _CappedStreams:
    """`send_message_streaming` and `subscribe` of an SDK gRPC transport, held
    to ``caps`` (set before use)."""

    caps: StreamCaps

    def send_message_streaming(self, *args: Any, **kwargs: Any) -> AsyncGenerator[StreamResponse]:
        return self.caps.apply(super().send_message_streaming(*args, **kwargs))  # type: ignore[misc]

    def subscribe(self, *args: Any, **kwargs: Any) -> AsyncGenerator[StreamResponse]:
        return self.caps.apply(super().subscribe(*args, **kwargs))  # type: ignore[misc]


class CappedGrpcTransport(_CappedStreams, GrpcTransport):
    """The SDK's A2A 1.0 gRPC transport, its streams capped."""


class CappedCompatGrpcTransport(_CappedStreams, CompatGrpcTransport):
    """The SDK's A2A 0.3 gRPC transport, its streams capped."""

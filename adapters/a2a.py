"""A2A upstreams, in whatever version and binding the agent's card offers.

The gateway's internal form of every A2A request and event is the official
SDK's A2A 1.0 protobuf types; the SDK's own client transports put them on the
wire in the agent's dialect: JSON-RPC, HTTP+JSON or gRPC, A2A 1.0 or 0.3 (the
`a2a.compat.v0_3` transports translate messages, parts, states, events and
errors). Which one is chosen follows the SDK's negotiation: the first binding
the gateway supports, and within it the interface closest to 1.0.

Every upstream request goes through `adapters.http.UpstreamHTTP` (SSRF checks
at connect time, size caps, one aiohttp pool) -- a gRPC agent's through a
channel of its own made under the same checks (`adapters.a2a_grpc`) -- and
carries exactly the headers (gRPC: metadata) built here and by the SDK: the
minted token and `A2A-Version` (without which an a2a-sdk server treats a
request as 0.3, DESIGN.md known traps). Nothing from the caller's request is
forwarded -- in particular not its `Authorization` -- and no cookie is kept
between calls (one user's session must not ride on another user's call).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx
from a2a.client.client import ClientCallContext
from a2a.client.transports.base import ClientTransport
from a2a.client.transports.grpc import GrpcTransport
from a2a.client.transports.jsonrpc import JsonRpcTransport
from a2a.client.transports.rest import RestTransport
from a2a.compat.v0_3.grpc_transport import CompatGrpcTransport
from a2a.compat.v0_3.jsonrpc_transport import CompatJsonRpcTransport
from a2a.compat.v0_3.rest_transport import CompatRestTransport
from a2a.compat.v0_3.versions import is_legacy_version
from a2a.types import AgentCard, AgentInterface
from a2a.utils.constants import PROTOCOL_VERSION_CURRENT, VERSION_HEADER, TransportProtocol
from google.protobuf.json_format import ParseDict

from adapters import a2a_tolerance
from adapters.a2a_grpc import (
    CappedCompatGrpcTransport,
    CappedGrpcTransport,
    StreamCaps,
    open_channel,
)
from adapters.http import UpstreamHTTP
from registry.fetch import SafeFetcher

# In order of preference: JSON-RPC is what every A2A agent must offer (A2A 1.0
# §5.1 lists it first) and what the SDK prefers; gRPC for an agent that offers
# nothing else (`adapters.a2a_grpc`: a channel per agent, not the shared pool).
SUPPORTED_BINDINGS = (
    TransportProtocol.JSONRPC,
    TransportProtocol.HTTP_JSON,
    TransportProtocol.GRPC,
)

# Upstream answers are read tolerantly by the SDK's client transports too
# (`adapters.a2a_tolerance`: known deviations of real agents, repaired only
# when the strict parse failed).
a2a_tolerance.install()


class NoUsableInterface(ValueError):
    """The card offers no interface in a binding the gateway speaks."""


@dataclass(frozen=True)
class UpstreamEndpoint:
    url: str
    binding: str
    version: str  # as the card states it ("1.0", "0.3.0", ...)
    # Worked out once: the SDK's check parses the version on every call.
    legacy: bool = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "legacy", is_legacy_version(self.version))


def choose_interface(card: AgentCard) -> UpstreamEndpoint:
    for binding in SUPPORTED_BINDINGS:
        candidates = [i for i in card.supported_interfaces if i.protocol_binding == binding]
        if candidates:
            best = min(candidates, key=_version_rank)
            return UpstreamEndpoint(best.url, binding, best.protocol_version or "0.3")
    offered = sorted({i.protocol_binding for i in card.supported_interfaces}) or ["none"]
    raise NoUsableInterface(
        "the agent offers no JSON-RPC, HTTP+JSON or gRPC interface (it offers "
        + ", ".join(offered)
        + ")"
    )


def _version_rank(interface: AgentInterface) -> int:
    version = interface.protocol_version
    if not version or is_legacy_version(version):
        return 2
    return 0 if version.split(".")[:2] == ["1", "0"] else 1


class A2AUpstreams:
    """One SDK client transport per agent card, over one shared, pinned pool."""

    def __init__(
        self,
        fetcher: SafeFetcher,
        *,
        connect_timeout_seconds: float,
        stream_idle_seconds: float,
        max_response_bytes: int,
        max_stream_bytes: int,
    ) -> None:
        self._upstream_http = UpstreamHTTP(
            fetcher.policy,
            connect_timeout_seconds=connect_timeout_seconds,
            idle_timeout_seconds=stream_idle_seconds,
            max_response_bytes=max_response_bytes,
            max_stream_bytes=max_stream_bytes,
            default_headers={VERSION_HEADER: PROTOCOL_VERSION_CURRENT},
        )
        self._http = self._upstream_http.httpx
        self._policy = fetcher.policy
        self._max_response_bytes = max_response_bytes
        self._stream_caps = StreamCaps(max_stream_bytes, stream_idle_seconds)
        self._clients: dict[tuple[str, str], tuple[ClientTransport, UpstreamEndpoint]] = {}

    async def client(
        self, agent_id: str, card_digest: str, card: Mapping[str, Any]
    ) -> tuple[ClientTransport, UpstreamEndpoint]:
        """The agent's transport, made once per card. Raises `NoUsableInterface`,
        and for a gRPC agent `UpstreamRefused` (its target is not allowed)."""
        found = self.http_client(agent_id, card_digest, card)
        if found is None:
            parsed = ParseDict(dict(card), AgentCard(), ignore_unknown_fields=True)
            endpoint = choose_interface(parsed)
            transport = await self._grpc_transport(parsed, endpoint)
            kept = self._clients.get((agent_id, card_digest))
            if kept is not None:  # a concurrent first call made one meanwhile
                await transport.close()
                return kept
            found = self._keep((agent_id, card_digest), transport, endpoint)
        return found

    def http_client(
        self, agent_id: str, card_digest: str, card: Mapping[str, Any]
    ) -> tuple[ClientTransport, UpstreamEndpoint] | None:
        """`client` without waiting: None for an agent reached over gRPC, whose
        channel is made (its target resolved and checked) by `client`."""
        key = (agent_id, card_digest)
        found = self._clients.get(key)
        if found is None:
            parsed = ParseDict(dict(card), AgentCard(), ignore_unknown_fields=True)
            endpoint = choose_interface(parsed)
            if endpoint.binding == TransportProtocol.GRPC:
                return None
            found = self._keep(key, _transport_for(self._http, parsed, endpoint), endpoint)
        return found

    def _keep(
        self, key: tuple[str, str], transport: ClientTransport, endpoint: UpstreamEndpoint
    ) -> tuple[ClientTransport, UpstreamEndpoint]:
        if len(self._clients) > 10_000:
            self._forget_all()
        found = self._clients[key] = (transport, endpoint)
        return found

    async def _grpc_transport(self, card: AgentCard, endpoint: UpstreamEndpoint) -> ClientTransport:
        channel = await open_channel(endpoint.url, self._policy, max_bytes=self._max_response_bytes)
        transport = (
            CappedCompatGrpcTransport(channel, card)
            if endpoint.legacy
            else CappedGrpcTransport(channel, card)
        )
        transport.caps = self._stream_caps
        return transport

    def _forget_all(self) -> None:
        old, self._clients = self._clients, {}
        for transport, _ in old.values():
            if isinstance(transport, GrpcTransport | CompatGrpcTransport):
                # Its calls under way keep their channel until they end.
                asyncio.get_running_loop().call_later(60, _close_later, transport)

    @property
    def http(self) -> httpx.AsyncClient:
        """The checked, capped httpx client, for other calls to addresses from outside."""
        return self._http

    @property
    def raw(self) -> UpstreamHTTP:
        """The same pool without httpx, for the pass-through hot path."""
        return self._upstream_http

    @staticmethod
    def context(token: str, timeout_seconds: float | None) -> ClientCallContext:
        return ClientCallContext(
            service_parameters={"Authorization": f"Bearer {token}"}, timeout=timeout_seconds
        )

    async def aclose(self) -> None:
        for transport, _ in self._clients.values():
            if isinstance(transport, GrpcTransport | CompatGrpcTransport):
                await transport.close()
        self._clients.clear()
        await self._upstream_http.aclose()


def _close_later(transport: ClientTransport) -> None:
    task = asyncio.ensure_future(transport.close())
    task.add_done_callback(lambda done: done.exception())


def _transport_for(
    http: httpx.AsyncClient, card: AgentCard, endpoint: UpstreamEndpoint
) -> ClientTransport:
    if endpoint.binding == TransportProtocol.JSONRPC:
        if endpoint.legacy:
            return CompatJsonRpcTransport(http, card, endpoint.url, is_shared_httpx=True)
        return JsonRpcTransport(http, card, endpoint.url, is_shared_httpx=True)
    if endpoint.legacy:
        return CompatRestTransport(http, card, endpoint.url, is_shared_httpx=True)
    return RestTransport(http, card, endpoint.url, is_shared_httpx=True)

"""The gRPC server of the A2A door (`gateway.a2a.grpc_door`): started when
`a2a_grpc_port` is set, with the generated service registered so that a body
protobuf cannot parse reaches the door as `Malformed` (the caller's error),
not grpcio's UNKNOWN."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import grpc.aio
from a2a.types import a2a_pb2_grpc

from gateway.settings import Settings
from gateway.settings.grpc import grpc_public_target


@dataclass(frozen=True)
class Malformed:
    """A request body that is not the method's message (what its parser said)."""

    error: str


class _Handlers:
    """Collects what the generated `add_A2AServiceServicer_to_server` registers."""

    def __init__(self) -> None:
        self.service = ""
        self.methods: dict[str, Any] = {}

    def add_generic_rpc_handlers(self, handlers: Any) -> None:
        pass

    def add_registered_method_handlers(self, service: str, methods: dict[str, Any]) -> None:
        self.service, self.methods = service, methods


def _lenient(parse: Any) -> Any:
    def parse_or_say(data: bytes) -> Any:
        try:
            return parse(data)
        except Exception as exc:
            return Malformed(str(exc) or type(exc).__name__)

    return parse_or_say


def _add_service(door: a2a_pb2_grpc.A2AServiceServicer, server: grpc.aio.Server) -> None:
    """The generated service, except that a body protobuf cannot parse reaches
    the door as `Malformed` (grpcio answers a parser's exception UNKNOWN,
    "Unexpected DecodeError"; it is the caller's error: INVALID_ARGUMENT)."""
    collected = _Handlers()
    a2a_pb2_grpc.add_A2AServiceServicer_to_server(door, collected)  # type: ignore[no-untyped-call]
    methods = {
        name: handler._replace(request_deserializer=_lenient(handler.request_deserializer))
        for name, handler in collected.methods.items()
    }
    generic = grpc.method_handlers_generic_handler(collected.service, methods)
    server.add_generic_rpc_handlers((generic,))
    server.add_registered_method_handlers(collected.service, methods)


def public_target(settings: Settings) -> str | None:
    """host:port of the gRPC binding as cards list it, or None when it is off."""
    return grpc_public_target(settings, settings.effective_public_url, settings.host)


async def serve(
    door: a2a_pb2_grpc.A2AServiceServicer, settings: Settings, stack: contextlib.AsyncExitStack
) -> int | None:
    """Start the gRPC server for ``door`` when `a2a_grpc_port` is set; stopped
    with ``stack``. Returns the port it listens on."""
    if settings.a2a_grpc_port is None:
        return None
    options = [
        # The same cap on one request as the HTTP door's bodies.
        ("grpc.max_receive_message_length", settings.max_request_bytes),
        # Worker processes share the port, as they share the HTTP one; a
        # single process must not silently share it with another program.
        ("grpc.so_reuseport", 1 if settings.workers > 1 else 0),
    ]
    server = grpc.aio.server(options=options)
    _add_service(door, server)
    address = f"{settings.host}:{settings.a2a_grpc_port}"
    if settings.a2a_grpc_tls_cert_file and settings.a2a_grpc_tls_key_file:
        key = await asyncio.to_thread(Path(settings.a2a_grpc_tls_key_file).read_bytes)
        chain = await asyncio.to_thread(Path(settings.a2a_grpc_tls_cert_file).read_bytes)
        port = server.add_secure_port(address, grpc.ssl_server_credentials([(key, chain)]))
    else:
        port = server.add_insecure_port(address)
    await server.start()
    stack.push_async_callback(server.stop, 5.0)
    return int(port)

"""The settings of the A2A gRPC binding (`gateway.a2a.grpc_door`): a part of `Settings`."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from pydantic import BaseModel, Field, model_validator


class GrpcOptions(BaseModel):
    a2a_grpc_port: int | None = Field(
        default=None,
        ge=1,
        le=65535,
        description="Serve A2A 1.0 over gRPC on this port of `host` (off when unset). Every "
        "agent is one tenant of it: its card lists the interface with `tenant` = its id.",
    )
    a2a_grpc_public_target: str | None = Field(
        default=None,
        description="host:port where clients reach the gRPC binding, as agent cards list it; "
        "default: the public URL's host and a2a_grpc_port.",
    )
    a2a_grpc_tls_cert_file: str | None = Field(
        default=None,
        description="PEM certificate chain for gRPC over TLS (with a2a_grpc_tls_key_file); "
        "without it the port speaks plaintext HTTP/2, for a TLS-terminating proxy in front.",
    )
    a2a_grpc_tls_key_file: str | None = Field(
        default=None, description="PEM private key of a2a_grpc_tls_cert_file."
    )

    @model_validator(mode="after")
    def _tls_pair(self) -> Any:
        if (self.a2a_grpc_tls_cert_file is None) != (self.a2a_grpc_tls_key_file is None):
            raise ValueError("a2a_grpc_tls_cert_file and a2a_grpc_tls_key_file go together")
        target = self.a2a_grpc_public_target
        if target is not None and (":" not in target or "/" in target):
            raise ValueError("a2a_grpc_public_target is host:port (a gRPC target has no path)")
        return self


def grpc_public_target(options: GrpcOptions, public_url: str, host: str) -> str | None:
    """host:port of the gRPC binding as cards list it, or None when it is off."""
    if options.a2a_grpc_port is None:
        return None
    if options.a2a_grpc_public_target:
        return options.a2a_grpc_public_target
    name = urlsplit(public_url).hostname or host
    if ":" in name:
        name = f"[{name}]"
    return f"{name}:{options.a2a_grpc_port}"

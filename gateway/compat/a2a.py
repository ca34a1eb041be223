"""The a2a-sdk's private names the gateway needs (a2a-sdk 1.x).

Each function says what the SDK lacks publicly; tests/gateway/compat/test_a2a.py
fails if an upgrade moves a name."""

from __future__ import annotations

from typing import Any


def grpc_error_codes() -> dict[Any, Any]:
    """The SDK gRPC handler's table of error class -> gRPC status code.

    The SDK has no way to add a code for an error class of ours, nor to
    correct one it maps against the specification (A2A 1.0 §5.4 names
    UNIMPLEMENTED where the table says FAILED_PRECONDITION); the gateway's
    gRPC door and its upstream-failure classes add theirs to this table,
    which only this process's gRPC door reads."""
    from a2a.server.request_handlers import grpc_handler

    table: dict[Any, Any] = grpc_handler._ERROR_CODE_MAP
    return table

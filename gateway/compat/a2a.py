"""The a2a-sdk's private names the gateway needs (a2a-sdk 1.x).

Each function says what the SDK lacks publicly; tests/gateway/compat/test_a2a.py
fails if an upgrade moves a name."""

from __future__ import annotations

import inspect
from collections.abc import Callable
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


def jsonrpc_answer_check() -> Callable[[Any, Any], Any]:
    """The SDK JSON-RPC client's own check of an answer (error or result,
    as `JsonRpcTransport` raises and returns them), without the tracing span
    the SDK's class decorator wraps around every method: the gateway's
    pass-through reads the upstream's answer itself and needs the same
    verdict, and on the hot path a span costs more than the check."""
    from a2a.client.transports.jsonrpc import JsonRpcTransport

    check: Callable[[Any, Any], Any] = inspect.unwrap(JsonRpcTransport._check_jsonrpc_response)
    return check

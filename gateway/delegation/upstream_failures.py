"""A2A errors for an upstream the gateway could not use, with the HTTP status
a gateway owes its caller for them.

A2A 1.0 names no error for "the agent behind me is down" (section 5.4's
codes are about tasks and the protocol), so the JSON-RPC and gRPC bindings
answer these as InternalError (-32603, INTERNAL) like the SDK would. The
HTTP+JSON binding maps each error class to an HTTP status (section 11.6,
the SDK's `A2A_ERROR_MAPPING`, keyed by the exact class), and there
InternalError is 500: "the gateway itself failed", which is what a caller, an
alert or a retrying client must not be told when an upstream was
unreachable or slow. HTTP's own words for those (RFC 9110 section 15.6.4,
15.6.5) are 503 Service Unavailable and 504 Gateway Timeout; google.rpc's
UNAVAILABLE and DEADLINE_EXCEEDED, which the binding's error body carries as
`status`. The same holds for InvalidAgentResponseError (500 in the SDK's
table): an upstream that answered nonsense is 502 Bad Gateway. The reasons
stay the SDK's (INTERNAL_ERROR, INVALID_AGENT_RESPONSE), so a client that
reads a reason back into an error class (`A2A_REASON_TO_ERROR`) gets the
SDK's class.

The SDK looks an error's class up in several tables, each keyed by the exact
class: the HTTP+JSON statuses (`A2A_ERROR_MAPPING`), the reasons
(`A2A_ERROR_REASONS`), the JSON-RPC codes and error models, the gRPC
statuses. `_register` puts each class here into every one of them, as its
base class is there, with only the HTTP status changed;
`tests/gateway/delegation/test_upstream_failures.py` finds every such table in the SDK
and fails if one lacks a class of ours (an SDK upgrade that adds a table).
"""

from __future__ import annotations

import contextlib
from typing import Any

from a2a.utils.errors import (
    A2A_ERROR_MAPPING,
    A2A_ERROR_REASONS,
    JSON_RPC_ERROR_CODE_MAP,
    A2AError,
    ErrorMapping,
    InternalError,
    InvalidAgentResponseError,
)


class UpstreamUnavailableError(InternalError):
    """The upstream could not be reached, or is held off (its breaker is open):
    HTTP+JSON 503 UNAVAILABLE, JSON-RPC -32603."""


class UpstreamTimeoutError(InternalError):
    """The upstream did not answer in time (or its stream ran past the limit):
    HTTP+JSON 504 DEADLINE_EXCEEDED, JSON-RPC -32603."""


class UpstreamBadAnswerError(InvalidAgentResponseError):
    """The upstream answered, but not with something usable (not A2A, too
    much, an HTTP error status, another request's id): HTTP+JSON 502 (RFC 9110
    section 15.6.3: "an invalid response from an inbound server"), JSON-RPC
    -32006 InvalidAgentResponseError as before."""


def _sdk_reverse_tables_first() -> None:
    """The SDK's clients build code -> class tables from these tables when
    imported: built after our classes are in, -32603 from an agent would be
    read as one of ours. So those modules are imported before."""
    import a2a.client.transports.jsonrpc
    import a2a.compat.v0_3.jsonrpc_transport
    import a2a.compat.v0_3.rest_transport

    with contextlib.suppress(ImportError):  # the gRPC extra
        import a2a.compat.v0_3.grpc_transport  # noqa: F401


def _register(error: type[A2AError], base: type[A2AError], status: int, grpc_status: str) -> None:
    from a2a.server.request_handlers import response_helpers

    # The gRPC door reads its codes from A2A_ERROR_MAPPING (`gateway.a2a.grpc_errors`).
    tables: tuple[dict[Any, Any], ...] = (
        A2A_ERROR_REASONS,
        JSON_RPC_ERROR_CODE_MAP,
        response_helpers.EXCEPTION_MAP,
    )
    for table in tables:
        table[error] = table[base]
    reason = A2A_ERROR_MAPPING[base].reason
    A2A_ERROR_MAPPING[error] = ErrorMapping(status, grpc_status, reason)


SDK_CLASS: dict[type[A2AError], type[A2AError]] = {
    UpstreamUnavailableError: InternalError,
    UpstreamTimeoutError: InternalError,
    UpstreamBadAnswerError: InvalidAgentResponseError,
}
_sdk_reverse_tables_first()
_register(UpstreamUnavailableError, InternalError, 503, "UNAVAILABLE")
_register(UpstreamTimeoutError, InternalError, 504, "DEADLINE_EXCEEDED")
_register(UpstreamBadAnswerError, InvalidAgentResponseError, 502, "UNAVAILABLE")

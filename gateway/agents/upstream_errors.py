"""Upstream failures as the A2A errors a caller gets, and what the breaker hears."""

from __future__ import annotations

from typing import Any

import aiohttp
import grpc
import grpc.aio
import httpx
from a2a.client.errors import A2AClientError, A2AClientTimeoutError
from a2a.utils.errors import (
    A2AError,
    InternalError,
)
from google.protobuf.json_format import ParseError

from adapters.http import UpstreamBadAnswer, UpstreamRefused
from gateway.delegation.delegate import BreakerOpen, Explained
from gateway.delegation.resilience import breaker_error
from gateway.delegation.upstream_failures import (
    UpstreamBadAnswerError,
    UpstreamTimeoutError,
    UpstreamUnavailableError,
)

# What a call to an agent can fail with that says something about the agent
# (its own A2A error, a transport failure, an answer that does not parse);
# anything else is the gateway's own and is raised as it is.
UPSTREAM_FAILURES: tuple[type[BaseException], ...] = (
    A2AError,
    httpx.HTTPError,
    aiohttp.ClientError,
    ParseError,
    A2AClientError,
    OSError,
    grpc.RpcError,
)

# gRPC statuses that say the call did not reach the agent (the channel could
# not connect, or lost the connection): UNAVAILABLE, as the gRPC docs define it.
_GRPC_UNREACHABLE = frozenset({grpc.StatusCode.UNAVAILABLE})


def upstream_error(agent_id: str, exc: BaseException, timeout: float | None) -> A2AError:
    """Map a client-side failure to the A2A error the caller gets.

    The cause chain is read whole before deciding: an SSRF refusal reaches us
    wrapped as a connection error (resolver -> aiohttp -> httpx -> SDK), and
    the refusal is what the caller needs to hear about.
    """
    chain: list[BaseException] = []
    cause: BaseException | None = exc
    while cause is not None and len(chain) < 16:
        chain.append(cause)
        cause = cause.__cause__

    def first(kind: type[BaseException] | tuple[type[BaseException], ...]) -> Any:
        return next((c for c in chain if isinstance(c, kind)), None)

    if (refused := first(UpstreamRefused)) is not None:
        return InternalError(f"agent {agent_id} may not be called: {refused}")
    if (bad := first(UpstreamBadAnswer)) is not None:
        return UpstreamBadAnswerError(f"agent {agent_id}: {bad}")
    # httpx-aiohttp maps every aiohttp connection error to httpx.ConnectTimeout;
    # when aiohttp's own error is in the chain, it is the one that says.
    aio = first(aiohttp.ClientError)
    timeouts = (httpx.TimeoutException, A2AClientTimeoutError, TimeoutError)
    if isinstance(aio, TimeoutError) or (aio is None and first(timeouts) is not None):
        limit = f" within {timeout:g} s" if timeout else ""
        return UpstreamTimeoutError(f"agent {agent_id} did not answer{limit}")
    if (status := first(httpx.HTTPStatusError)) is not None:
        return UpstreamBadAnswerError(
            f"agent {agent_id} answered HTTP {status.response.status_code}"
        )
    if first((httpx.TransportError, aiohttp.ClientError, OSError)) is not None:
        return UpstreamUnavailableError(
            f"agent {agent_id} could not be reached ({_transport_failure(chain)})"
        )
    if (rpc := first(grpc.aio.AioRpcError)) is not None and rpc.code() in _GRPC_UNREACHABLE:
        # A gRPC agent: the channel's own failure, not an answer of the agent.
        return UpstreamUnavailableError(f"agent {agent_id} could not be reached ({rpc.details()})")
    if isinstance(exc, A2AClientError):
        return UpstreamBadAnswerError(f"agent {agent_id} sent an invalid answer: {exc}")
    if isinstance(exc, A2AError):
        return exc  # the agent's own A2A error, with its code
    return UpstreamBadAnswerError(f"agent {agent_id} sent an invalid answer")


def _transport_failure(chain: list[BaseException]) -> str:
    """Say what failed in words that do not depend on the HTTP library."""
    connect = (httpx.ConnectError, httpx.ConnectTimeout, aiohttp.ClientConnectorError)
    lost = (
        httpx.RemoteProtocolError,
        httpx.ReadError,
        aiohttp.ServerDisconnectedError,
        aiohttp.ClientPayloadError,  # the body cut off (httpx-aiohttp: ReadError)
    )
    for cause in reversed(chain):  # the deepest cause is the real one
        if isinstance(cause, connect):
            return "connection failed"
        if isinstance(cause, lost):
            return "connection lost"
    return "transport error"


def outcome_of(error: A2AError | None) -> str:
    """The audit outcome of a call that ended with ``error``: the A2A error
    the caller was sent, by its SDK class name (the gateway's own subclasses,
    such as `UpstreamUnavailableError`, are sent as the SDK class they
    extend)."""
    if error is None:
        return "ok"
    sent = next(c for c in type(error).__mro__ if c.__module__.startswith("a2a."))
    return f"a2a_error:{sent.__name__}"[:64]


def explain_agent_failure(agent_id: str, timeout: float | None, exc: BaseException) -> Explained:
    """A failure of a call to ``agent_id`` as the A2A error its caller gets and
    its record (`gateway.delegation.delegate.Sending.explain`). ``timeout``:
    the call's limit, said in a timeout's message."""
    if isinstance(exc, BreakerOpen):
        error: A2AError = breaker_error(exc)
    elif isinstance(exc, UPSTREAM_FAILURES):
        error = upstream_error(agent_id, exc, timeout)
    else:  # not the agent's doing: raised as it is
        return Explained(exc, "error", f"{type(exc).__name__}: {exc}")
    return Explained(error, outcome_of(error), str(error))

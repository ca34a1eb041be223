"""A dependency outage on the A2A front door: the same answer on every path.

A2A 1.0 defines no error for "the server cannot answer now, try later". The
HTTP+JSON binding carries `google.rpc.Status` errors (A2A 1.0 §5.4, "Error
Code Mappings"), and there the answer is `UNAVAILABLE` with HTTP 503, the
code google.rpc.Code documents as "most likely a transient condition, which
can be corrected by retrying with a backoff". JSON-RPC 2.0 §5.1 leaves
-32000..-32099 to the implementation; A2A takes -32001..-32009 and the
gateway's MCP errors -32010..-32014, so an outage is **-32050** with the
same `ErrorInfo` detail (reason `DEPENDENCY_UNAVAILABLE`, metadata
`dependency` and `retryAfterSeconds`). Either binding answers with HTTP 503
and `Retry-After` when the answer is not already a stream (an outage in the
middle of an SSE stream ends it with the error event).

The SDK turns any other exception from a handler into -32603 with the
exception's text (an errno message, a SQL statement), so every handler the
front door serves is wrapped (`watch`): an outage becomes
`DependencyUnavailableError`, and the request's `OutageNote` says so to the
front door, which sets the status, the header and the audit record.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import inspect
import weakref
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

from a2a.server.jsonrpc_models import JSONRPCError
from a2a.server.request_handlers import response_helpers
from a2a.server.request_handlers.response_helpers import build_error_response
from a2a.utils import errors as sdk_errors
from a2a.utils.error_handlers import build_rest_error_payload
from a2a.utils.errors import A2AError, ErrorMapping
from starlette.responses import JSONResponse, Response

from adapters.trace_context import HeaderLines
from adapters.trace_context import begin as begin_trace
from adapters.trace_context import current as current_trace
from gateway.agents.admission import Admission
from gateway.delegation.audit_records import AuditEvent, outage_event
from gateway.delegation.pipeline import Caller
from gateway.storage.outages import DependencyUnavailable, outage_of

DEPENDENCY_UNAVAILABLE = -32050
REASON = "DEPENDENCY_UNAVAILABLE"


class DependencyUnavailableError(A2AError):
    message = "A dependency of the gateway is unavailable"
    outage: DependencyUnavailable | None = None


def _register() -> None:
    """Teach the SDK's error tables the outage error (its code, HTTP status,
    gRPC status and reason), as it knows its own."""
    sdk_errors.JSON_RPC_ERROR_CODE_MAP[DependencyUnavailableError] = DEPENDENCY_UNAVAILABLE
    sdk_errors.A2A_ERROR_MAPPING[DependencyUnavailableError] = ErrorMapping(
        503, "UNAVAILABLE", REASON
    )
    sdk_errors.A2A_ERROR_REASONS[DependencyUnavailableError] = REASON
    response_helpers.EXCEPTION_MAP[DependencyUnavailableError] = JSONRPCError


_register()


def unavailable_error(outage: DependencyUnavailable) -> DependencyUnavailableError:
    error = DependencyUnavailableError(
        f"{outage}; try again in {outage.retry_after} s",
        data={"dependency": outage.dependency, "retryAfterSeconds": str(outage.retry_after)},
    )
    error.outage = outage
    return error


@dataclass
class OutageNote:
    """What happened to one request; set by `watch`ed handlers. ``caller``:
    who the door authenticated (`note_caller`), so that an outage met before
    the call was admitted (the agent's record read, a limit counted) is still
    audited for its caller; ``admission``: the call the door admitted
    (`note_admission`), whose trace the record then takes."""

    outage: DependencyUnavailable | None = None
    caller: Caller | None = None
    admission: Admission | None = None


current_note: contextvars.ContextVar[OutageNote | None] = contextvars.ContextVar(
    "a2a_outage_note", default=None
)


def note_caller(caller: Caller) -> None:
    """Tell the request's `OutageNote` who its authenticated caller is."""
    note = current_note.get()
    if note is not None:
        note.caller = caller


def note_admission(admission: Admission) -> None:
    """Tell the request's `OutageNote` which call the door admitted."""
    note = current_note.get()
    if note is not None:
        note.admission = admission


def _noted(exc: Exception) -> DependencyUnavailableError | None:
    outage = outage_of(exc)
    if outage is None:
        return None
    note = current_note.get()
    if note is not None:
        note.outage = outage
    return unavailable_error(outage)


def _watched(method: Callable[..., Any]) -> Callable[..., Any]:
    # Unwrapped: a decorator may return the stream from a plain function.
    if inspect.isasyncgenfunction(inspect.unwrap(method)):

        @functools.wraps(method)
        async def stream(*args: Any, **kwargs: Any) -> AsyncIterator[Any]:
            try:
                # Closed here when its reader stops, not later by the garbage
                # collector: the stream's audit record is written as it closes,
                # before the reader stores the outcome (docs/delegation.md, audit).
                async with contextlib.aclosing(method(*args, **kwargs)) as items:
                    async for item in items:
                        yield item
            except A2AError:
                raise
            except Exception as exc:
                error = _noted(exc)
                if error is None:
                    raise
                raise error from None

        return stream

    @functools.wraps(method)
    async def call(*args: Any, **kwargs: Any) -> Any:
        try:
            return await method(*args, **kwargs)
        except A2AError:
            raise
        except Exception as exc:
            error = _noted(exc)
            if error is None:
                raise
            raise error from None

    return call


def noted_errors(operation: Callable[..., Any]) -> Callable[..., Any]:
    """``operation`` as `watch` wraps a handler's: an outage it meets noted
    for the door and raised as the A2A error that says so."""
    return _watched(operation)


# The handlers `watch` has wrapped already (wrapped once: a door may share one).
_WATCHED: weakref.WeakSet[Any] = weakref.WeakSet()


def watch(handler: Any) -> Any:
    """Wrap every A2A operation (``on_*``) of ``handler`` in place; returns it."""
    if handler in _WATCHED:
        return handler
    # By name: every operation the SDK's `RequestHandler` has, or a later
    # version adds, is wrapped without a list here to keep up to date.
    for name in dir(type(handler)):
        if name.startswith("on_") and callable(getattr(handler, name, None)):
            setattr(handler, name, _watched(getattr(handler, name)))
    _WATCHED.add(handler)
    return handler


def outage_response(
    outage: DependencyUnavailable, *, jsonrpc: bool, request_id: Any = None
) -> Response:
    """The whole answer for an outage met before the SDK had the request."""
    error = unavailable_error(outage)
    body = build_error_response(request_id, error) if jsonrpc else build_rest_error_payload(error)
    return JSONResponse(body, status_code=503, headers=retry_after(outage))


def retry_after(outage: DependencyUnavailable) -> dict[str, str]:
    return {"Retry-After": str(outage.retry_after)}


def outage_record(
    admission: Admission | None,
    agent_id: str | None,
    outage: DependencyUnavailable,
    headers: HeaderLines,
    caller: Caller | None = None,
) -> AuditEvent:
    """The audit record of a call an outage answered, in any binding: for the
    admitted caller under the admission's trace, else (met before admission,
    or a target that is not an agent) under the request's own trace, so that
    the answer and the record meet -- for the authenticated ``caller`` when
    there is one (an outage met deciding the call is still that caller's
    refusal), "(unknown)" only when the outage came before authentication."""
    grant = admission.grant if admission is not None else None
    if grant is not None:
        caller = grant.caller
        return outage_event(
            "a2a",
            grant.trace_id,
            str(outage),
            subject=caller.subject,
            issuer=caller.issuer,
            client_id=caller.client_id,
            actors=caller.actors,
            target=agent_id,
        )
    began = current_trace()
    trace_id = began.trace_id if began is not None else begin_trace(headers)
    if caller is None:
        return outage_event("a2a", trace_id, str(outage), target=agent_id)
    return outage_event(
        "a2a",
        trace_id,
        str(outage),
        subject=caller.subject,
        issuer=caller.issuer,
        client_id=caller.client_id,
        actors=caller.actors,
        target=agent_id,
    )

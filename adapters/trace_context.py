"""W3C Trace Context (level 1) on every upstream call made for a delegation.

The audit record of a call carries a trace id: the caller's, from a valid
`traceparent`, or a fresh one (`begin`). The upstream the gateway calls for
it gets the same trace id, so its own traces join the gateway's audit trail:

    traceparent: 00-<trace id>-<span id>-<flags>

with a span id made fresh for every request sent (a retry is a new span),
never all zeros, and flags ``01`` (sampled: the gateway has recorded the
call, in its audit log) unless the caller sent its trace unsampled. The
caller's `tracestate` goes along unchanged, but only with the caller's own
trace id: a trace the gateway started has no state of anyone's.

The header is made here and nowhere else. A caller's `traceparent` is read
as the spec says ("traceparent Header", "Versioning of traceparent": a
version above 00 is read for its first four fields; anything that does not
parse restarts the trace) and only its trace id and sampled flag are kept:
its bytes are never forwarded. Nor is a `tracestate` that breaks the list
grammar ("tracestate Header Field Values") or is longer than the 512
characters the spec asks every vendor to carry ("tracestate Limits": it is
dropped whole, never cut). Nothing an upstream answers, nor a card, has a
say in either header.

How the trace reaches the request: a `ContextVar`, like the MCP call's
credential (`adapters.mcp_http.CALL_CREDENTIAL`). Between the front door that
decides the trace and the socket lie the SDKs' client transports, the task
runner and the MCP SDK's session tasks, none of which take a header from us.
Each asyncio task runs in its own copy of the context, and the MCP SDK makes
a request's POST in its sender's context, so the value set for a call is the
one its requests see, and a concurrent call's never is. It is set where the
trace is decided (`begin`, in the task serving that one request or MCP
message) and bound to each delegation where its token is minted (`follow`,
from `gateway.delegation.pipeline`), so a call made later on a stored trace id (an
approved call, a run taken over after a restart) carries that trace. Every
aiohttp pool the gateway calls upstreams with (`adapters.http.checked_session`)
writes the headers into each request it builds (`TracedRequest`): a request
made outside any delegation -- a health probe, an MCP session's own upkeep --
carries none, and no header of those names set by anyone else survives.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Mapping, Sequence
from contextvars import ContextVar, Token
from dataclasses import dataclass, field
from typing import Any, Protocol

import aiohttp
from aiohttp.typedefs import LooseHeaders
from multidict import CIMultiDict

TRACEPARENT = "traceparent"
TRACESTATE = "tracestate"
# Version 00 is exactly this; a later version may append "-..." fields.
_TRACEPARENT = re.compile(r"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})")
_VERSION_00_LENGTH = 55
# A list member: key "=" value. The key as the current draft writes it, which
# also admits every key of level 1's simple and multi-tenant forms.
_MEMBER = re.compile(
    r"[a-z0-9][a-z0-9_\-*/@]{0,255}"
    # printable ASCII but "," and "=", up to 256 characters, not ending in a space
    r"=[\x20-\x2b\x2d-\x3c\x3e-\x7e]{0,255}[\x21-\x2b\x2d-\x3c\x3e-\x7e]"
)
_MAX_MEMBERS = 32
_MAX_STATE = 512  # what every vendor should carry ("tracestate Limits")


def new_trace_id() -> str:
    return secrets.token_hex(16)


def valid_trace_id(trace_id: str) -> bool:
    return (
        len(trace_id) == 32
        and all(c in "0123456789abcdef" for c in trace_id)
        and trace_id != "0" * 32
    )


@dataclass(frozen=True)
class TraceContext:
    """The trace the upstream calls of this context belong to."""

    trace_id: str
    sampled: bool = True
    # The caller's tracestate; only ever with the caller's own trace id.
    state: str | None = None
    # The caller's span (its `traceparent`'s parent-id): with tracing on, the
    # gateway's server span, which spans made for this request hang under.
    parent_id: str | None = field(default=None, compare=False)

    @classmethod
    def incoming(cls, traceparent: Sequence[str], tracestate: Sequence[str] = ()) -> TraceContext:
        """The caller's trace, from the header lines it sent; a fresh trace if
        there is not exactly one `traceparent` or it does not parse."""
        parsed = _parse_traceparent(traceparent[0]) if len(traceparent) == 1 else None
        if parsed is None:
            # "If the vendor failed to parse traceparent, it MUST NOT attempt
            # to parse tracestate."
            return cls(new_trace_id())
        trace_id, parent_id, sampled = parsed
        return cls(trace_id, sampled, _checked_state(tracestate), parent_id)

    def traceparent(self, span_id: str | None = None) -> str:
        """The header for one request: this trace, its span (the request's
        CLIENT span when tracing is on) or a fresh one."""
        while span_id is None or span_id == "0" * 16:  # all zeros is invalid
            span_id = secrets.token_hex(8)
        return f"00-{self.trace_id}-{span_id}-{'01' if self.sampled else '00'}"


def _parse_traceparent(value: str) -> tuple[str, str, bool] | None:
    """(trace id, parent id, sampled) of a valid `traceparent`; of a version above 00,
    from its first four fields, which must be followed by "-" or nothing."""
    value = value.strip(" \t")
    match = _TRACEPARENT.match(value)
    if match is None:
        return None
    version, trace_id, parent_id, flags = match.groups()
    if version == "ff":
        return None
    if len(value) != _VERSION_00_LENGTH and (version == "00" or value[_VERSION_00_LENGTH] != "-"):
        return None
    if trace_id == "0" * 32 or parent_id == "0" * 16:
        return None
    return trace_id, parent_id, bool(int(flags, 16) & 1)


def _checked_state(lines: Sequence[str]) -> str | None:
    """The caller's `tracestate` lines as one value (joined as RFC 9110 joins
    header lines), unchanged, if it is a valid list -- at most 32 members,
    each key once; empty members allowed -- short enough to carry whole."""
    value = ",".join(lines)
    if not value.strip(" \t,") or len(value) > _MAX_STATE:
        return None
    members = [m.strip(" \t") for m in value.split(",")]
    members = [m for m in members if m]
    keys = [m.split("=", 1)[0] for m in members]
    if len(members) > _MAX_MEMBERS or len(set(keys)) != len(keys):
        return None
    if not all(_MEMBER.fullmatch(m) for m in members):
        return None
    return value


_CURRENT: ContextVar[TraceContext | None] = ContextVar("switchboard_trace", default=None)
# With tracing on (`adapters.spans`): the id of the CLIENT span of the request
# being built, which its `traceparent` names as the parent.
_REQUEST_SPAN: ContextVar[str | None] = ContextVar("switchboard_request_span", default=None)


def set_request_span(span_id: str) -> Token[str | None]:
    return _REQUEST_SPAN.set(span_id)


def reset_request_span(token: Token[str | None]) -> None:
    _REQUEST_SPAN.reset(token)


class HeaderLines(Protocol):
    """What a request's headers offer (Starlette's `Headers`)."""

    def getlist(self, key: str) -> list[str]: ...


def begin(headers: HeaderLines | None) -> str:
    """Decide the trace of an incoming request -- the caller's if its
    `traceparent` is valid, else a fresh one -- for the upstream calls this
    context makes from here on; returns its trace id (the audit's).

    Called in the task that serves the request (or, for `/mcp`, the SDK's
    task for that one message), so the trace is that request's alone."""
    if headers is None:
        trace = TraceContext(new_trace_id())
    else:
        trace = TraceContext.incoming(headers.getlist(TRACEPARENT), headers.getlist(TRACESTATE))
    _CURRENT.set(trace)
    return trace.trace_id


def carried(meta: Mapping[str, Any] | None) -> TraceContext | None:
    """The trace an MCP message carries in its ``params._meta`` (OpenTelemetry's
    MCP conventions, "Context propagation"; SEP-414: unprefixed `traceparent`
    and `tracestate`), if its `traceparent` is valid; read as the header is."""
    value = meta.get(TRACEPARENT) if meta else None
    parsed = _parse_traceparent(value) if isinstance(value, str) else None
    if parsed is None:
        return None
    trace_id, parent_id, sampled = parsed
    state = meta.get(TRACESTATE) if meta else None
    return TraceContext(
        trace_id, sampled, _checked_state([state]) if isinstance(state, str) else None, parent_id
    )


def of_message(meta: Mapping[str, Any] | None, headers: HeaderLines | None) -> TraceContext:
    """The trace of one MCP message: the one its ``params._meta`` carries, so
    a client's trace, the gateway's and the upstream's are one; else its HTTP
    request's `traceparent`; else a fresh one."""
    found = carried(meta)
    if found is not None:
        return found
    if headers is None:
        return TraceContext(new_trace_id())
    return TraceContext.incoming(headers.getlist(TRACEPARENT), headers.getlist(TRACESTATE))


def enter(trace: TraceContext) -> str:
    """``trace`` is this context's from here on, unless the context already
    serves that trace (the span that `gateway.mcp.server_spans` opened for
    the message, which the spans made for it hang under); its trace id."""
    current = _CURRENT.get()
    if current is None or current.trace_id != trace.trace_id:
        _CURRENT.set(trace)
    return trace.trace_id


def follow(trace_id: str) -> None:
    """The upstream calls this context makes from here on are for a
    delegation audited under ``trace_id``: they carry it -- with the caller's
    flags and state when it is the trace `begin` took from the caller, else
    as a trace of the gateway's own (an approved call, a run resumed after a
    restart). A trace id that is not one (a record older than trace ids)
    means no header."""
    current = _CURRENT.get()
    if current is not None and current.trace_id == trace_id:
        return
    _CURRENT.set(TraceContext(trace_id) if valid_trace_id(trace_id) else None)


def current() -> TraceContext | None:
    return _CURRENT.get()


def stamp(headers: CIMultiDict[str]) -> None:
    """Set the trace headers of one outgoing request (and drop any others)."""
    headers.popall(TRACEPARENT, None)
    headers.popall(TRACESTATE, None)
    trace = _CURRENT.get()
    if trace is None:
        return
    headers[TRACEPARENT] = trace.traceparent(_REQUEST_SPAN.get())
    if trace.state is not None:
        headers[TRACESTATE] = trace.state


class TracedRequest(aiohttp.ClientRequest):
    """The request class of every upstream pool (`adapters.http.checked_session`):
    built in the task making the request, with the trace headers of that
    task's delegation and no others. (Not aiohttp's `TraceConfig` hook: its
    signals fire on every step and chunk of every request, where this sets
    the headers once.)"""

    def update_headers(self, headers: LooseHeaders | None) -> None:
        super().update_headers(headers)
        stamp(self.headers)

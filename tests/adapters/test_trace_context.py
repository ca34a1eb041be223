"""adapters.trace_context: reading a caller's W3C trace context, and the
headers every upstream request made for a delegation carries."""

from __future__ import annotations

import asyncio
import contextvars
import json
import re
import secrets
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from multidict import CIMultiDict
from starlette.datastructures import Headers
from starlette.types import Receive, Scope, Send

from adapters.http import UpstreamHTTP
from adapters.trace_context import TraceContext, begin, current, follow, stamp
from registry.ssrf import AddressPolicy
from tests.support.servers import ServerThread

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT = f"00-{TRACE}-00f067aa0ba902b7-01"
OURS = re.compile(r"00-([0-9a-f]{32})-([0-9a-f]{16})-(0[01])")


def isolated(fn: Callable[[], Any]) -> Any:
    """Run ``fn`` in a context of its own, as each request's task does."""
    return contextvars.Context().run(fn)


def headers(*pairs: tuple[str, str]) -> Headers:
    return Headers(raw=[(k.encode(), v.encode()) for k, v in pairs])


# Reading the caller's traceparent --------------------------------------------------


@pytest.mark.parametrize(
    ("value", "sampled"),
    [
        (PARENT, True),
        (f"00-{TRACE}-00f067aa0ba902b7-00", False),
        (f"00-{TRACE}-00f067aa0ba902b7-09", True),  # a flag is a bit, not a number
        (f"00-{TRACE}-00f067aa0ba902b7-02", False),
        (f" {PARENT}\t", True),  # optional whitespace around a header value
        (f"cc-{TRACE}-00f067aa0ba902b7-01", True),  # a later version, same fields
        (f"cc-{TRACE}-00f067aa0ba902b7-01-what-the-future-adds", True),
    ],
)
def test_a_valid_traceparent_gives_its_trace_id_and_sampled_flag(value: str, sampled: bool) -> None:
    trace = TraceContext.incoming([value])
    assert (trace.trace_id, trace.sampled) == (TRACE, sampled)


@pytest.mark.parametrize(
    "value",
    [
        "",
        "garbage",
        "00-" + "0" * 32 + "-00f067aa0ba902b7-01",  # all-zero trace id is invalid
        f"00-{TRACE}-0000000000000000-01",  # so is an all-zero parent id
        f"00-{TRACE.upper()}-00f067aa0ba902b7-01",  # must be lowercase
        f"00-{TRACE[:-1]}-00f067aa0ba902b7-01",  # 31 digits
        f"00-{TRACE}-00f067aa0ba902b-01",  # 15
        f"00-{TRACE}-00f067aa0ba902b7-1",
        f"00-{TRACE}-00f067aa0ba902b7-0g",
        f"ff-{TRACE}-00f067aa0ba902b7-01",  # version ff is forbidden
        f"0-{TRACE}-00f067aa0ba902b7-01",
        f"00-{TRACE}-00f067aa0ba902b7-01-extra",  # version 00 has exactly four fields
        f"cc-{TRACE}-00f067aa0ba902b7-01extra",  # a later version's fields end with "-"
        f"00_{TRACE}_00f067aa0ba902b7_01",
        f"00-{TRACE}-00f067aa0ba902b7-01\r\nx-injected: 1",
    ],
)
def test_a_traceparent_that_does_not_parse_starts_a_fresh_trace(value: str) -> None:
    trace = TraceContext.incoming([value], ["congo=t61rcWkgMzE"])
    assert re.fullmatch(r"[0-9a-f]{32}", trace.trace_id)
    assert trace.trace_id != TRACE
    assert trace.trace_id != TraceContext.incoming([value]).trace_id  # fresh every time
    # Without a valid traceparent the tracestate is not looked at.
    assert trace.state is None
    assert trace.sampled


def test_none_or_two_traceparents_start_a_fresh_trace() -> None:
    assert TraceContext.incoming([]).trace_id != TRACE
    assert TraceContext.incoming([PARENT, PARENT]).trace_id != TRACE


# ... and its tracestate -------------------------------------------------------------


@pytest.mark.parametrize(
    ("lines", "state"),
    [
        (["congo=t61rcWkgMzE"], "congo=t61rcWkgMzE"),
        (["rojo=00f067aa0ba902b7,congo=t61rcWkgMzE"], "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE"),
        # Header lines are joined; optional whitespace and empty members are kept as sent.
        (["rojo=1", "congo=2"], "rojo=1,congo=2"),
        (["rojo=1 , ,\tcongo=2"], "rojo=1 , ,\tcongo=2"),
        (["tenant@system=x", "a-b_c*d/e=v w"], "tenant@system=x,a-b_c*d/e=v w"),
        ([], None),
        ([""], None),
        ([" , "], None),  # empty: accepted, not sent on
        (["Congo=1"], None),  # keys are lowercase
        (["congo=a=b"], None),  # "=" is not a value character
        (["congo=é"], None),  # printable ASCII only
        (["congo"], None),
        (["congo=1,congo=2"], None),  # each key once
        ([",".join(f"k{i}=v" for i in range(33))], None),  # at most 32 members
        (["k=" + "v" * 257], None),  # a value has at most 256 characters
        ([",".join(f"key{i}={'v' * 60}" for i in range(8))], None),  # over 512 characters
    ],
)
def test_the_callers_tracestate_goes_on_unchanged_only_when_valid(
    lines: list[str], state: str | None
) -> None:
    assert TraceContext.incoming([PARENT], lines).state == state


def test_a_tracestate_of_512_characters_is_carried_whole() -> None:
    value = ",".join(f"key{i}={'v' * 58}" for i in range(8)) + "v"
    assert len(value) == 512
    assert TraceContext.incoming([PARENT], [value]).state == value
    assert TraceContext.incoming([PARENT], [value, "k=v"]).state is None


# What goes upstream -----------------------------------------------------------------


def test_each_traceparent_sent_is_version_00_with_a_fresh_span() -> None:
    trace = TraceContext(TRACE, sampled=False)
    sent = [OURS.fullmatch(trace.traceparent()) for _ in range(50)]
    assert all(m is not None and m.group(1) == TRACE and m.group(3) == "00" for m in sent)
    spans = {m.group(2) for m in sent if m is not None}
    assert len(spans) == 50 and "00f067aa0ba902b7" not in spans
    assert TraceContext(TRACE).traceparent().endswith("-01")


def test_a_span_id_is_never_all_zeros(monkeypatch: pytest.MonkeyPatch) -> None:
    answers = iter(["0" * 16, "0" * 16, "00f067aa0ba902b7"])
    # The module adapters.trace_context draws its span ids from.
    monkeypatch.setattr(secrets, "token_hex", lambda _n: next(answers))
    assert TraceContext(TRACE).traceparent() == f"00-{TRACE}-00f067aa0ba902b7-01"


def test_stamp_writes_the_current_trace_and_drops_any_other() -> None:
    def run() -> CIMultiDict[str]:
        begin(headers(("traceparent", f"00-{TRACE}-00f067aa0ba902b7-00"), ("tracestate", "c=1")))
        sent: CIMultiDict[str] = CIMultiDict(
            {"TraceParent": "00-" + "1" * 32 + "-" + "1" * 16 + "-01", "TRACESTATE": "evil=1"}
        )
        stamp(sent)
        return sent

    sent = isolated(run)
    assert len(sent.getall("traceparent")) == 1
    match = OURS.fullmatch(sent["traceparent"])
    assert match is not None and match.group(1) == TRACE and match.group(3) == "00"
    assert match.group(2) != "00f067aa0ba902b7"
    assert sent.getall("tracestate") == ["c=1"]


def test_outside_any_trace_no_trace_header_is_sent() -> None:
    def run() -> CIMultiDict[str]:
        sent: CIMultiDict[str] = CIMultiDict({"traceparent": PARENT, "tracestate": "c=1"})
        stamp(sent)
        return sent

    assert dict(isolated(run)) == {}


# Which trace a context is in --------------------------------------------------------


def test_begin_decides_the_trace_and_follow_keeps_the_callers_flags_and_state() -> None:
    def run() -> tuple[TraceContext | None, ...]:
        trace_id = begin(
            headers(("traceparent", f"00-{TRACE}-00f067aa0ba902b7-00"), ("tracestate", "c=1"))
        )
        assert trace_id == TRACE
        began = current()
        follow(TRACE)  # the permit for this very request
        same = current()
        follow("a" * 32)  # an approved call's stored trace
        stored = current()
        follow("")  # a record from before trace ids
        return began, same, stored, current()

    began, same, stored, none = isolated(run)
    assert began == same == TraceContext(TRACE, sampled=False, state="c=1")
    assert stored == TraceContext("a" * 32)  # sampled, and nobody's state
    assert none is None


def test_begin_without_headers_starts_a_trace_of_the_gateways_own() -> None:
    def run() -> tuple[str, TraceContext | None]:
        return begin(None), current()

    trace_id, trace = isolated(run)
    assert trace == TraceContext(trace_id)


async def test_concurrent_requests_keep_their_own_traces() -> None:
    ids = ["1" * 32, "2" * 32, "3" * 32]
    all_begun = asyncio.Barrier(len(ids))

    async def request(trace_id: str) -> str | None:
        begin(headers(("traceparent", f"00-{trace_id}-00f067aa0ba902b7-01")))
        await all_begun.wait()  # the others begin meanwhile
        trace = current()
        return trace.trace_id if trace else None

    assert await asyncio.gather(*(request(i) for i in ids)) == ids
    assert current() is None  # nor does any of them reach the task that started them


# On the wire ------------------------------------------------------------------------


def _echo_headers(_url: str) -> object:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        seen: dict[str, list[str]] = {}
        for k, v in scope["headers"]:
            seen.setdefault(k.decode(), []).append(v.decode())
        body = json.dumps(seen).encode()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": body})

    return app


@pytest.fixture
async def pool() -> AsyncIterator[UpstreamHTTP]:
    http = UpstreamHTTP(
        AddressPolicy(allow_loopback=True),
        connect_timeout_seconds=2,
        idle_timeout_seconds=2,
        max_response_bytes=4096,
        max_stream_bytes=4096,
    )
    yield http
    await http.aclose()


async def test_both_sides_of_the_pool_send_the_trace_of_the_call(pool: UpstreamHTTP) -> None:
    """aiohttp directly (the pass-through) and httpx over it (the SDKs)."""
    with ServerThread(_echo_headers) as server:
        forged = {"traceparent": PARENT, "tracestate": "evil=1"}

        async def call() -> list[dict[str, list[str]]]:
            begin(headers(("traceparent", PARENT), ("tracestate", "congo=1")))
            raw = await pool.post(server.url, b"{}", forged, timeout_seconds=3)
            via_httpx = await pool.httpx.post(server.url, content=b"{}", headers=forged)
            return [json.loads(raw.body), via_httpx.json()]

        seen = await asyncio.create_task(call())  # a task: a context of its own
        untraced = json.loads((await pool.post(server.url, b"{}", forged, timeout_seconds=3)).body)
    spans = set()
    for one in seen:
        (value,) = one["traceparent"]
        match = OURS.fullmatch(value)
        assert match is not None and match.group(1) == TRACE
        spans.add(match.group(2))
        assert one["tracestate"] == ["congo=1"]
    assert len(spans) == 2 and "00f067aa0ba902b7" not in spans
    # A request made for no delegation carries no trace, not even one it was given.
    assert "traceparent" not in untraced and "tracestate" not in untraced

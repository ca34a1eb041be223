"""Unit tests of the relay's pieces: its per-call limits
(the end-to-end proof is tests/e2e/test_mcp_relay.py)."""

from __future__ import annotations

import asyncio
import contextvars
from dataclasses import dataclass, field
from typing import Any

import mcp_types as types

from adapters.mcp_relay import on_elicitation, relaying
from gateway.mcp.relay import MAX_LOG_BYTES, MAX_LOG_LINES, MAX_QUESTIONS, DownstreamRelay

QUESTION = types.ElicitRequestFormParams(
    message="?", requested_schema={"type": "object", "properties": {}}
)


@dataclass
class FakeSession:
    """Records what the relay sends to its caller."""

    client_capabilities: types.ClientCapabilities | None
    sent: list[Any] = field(default_factory=list)
    logged: list[Any] = field(default_factory=list)

    async def send_request(self, request: Any, result_type: Any, metadata: Any = None) -> Any:
        self.sent.append((request, metadata.related_request_id))
        return types.ElicitResult(action="decline")

    async def send_log_message(self, level: Any, data: Any, logger: Any, **kw: Any) -> None:
        self.logged.append((level, data, kw["related_request_id"]))


@dataclass
class FakeContext:
    session: FakeSession
    protocol_version: str = "2025-11-25"
    request_id: int = 7
    meta: dict[str, Any] | None = None


def relay_for(ctx: FakeContext, level: Any = None) -> DownstreamRelay:
    return DownstreamRelay(ctx, lambda _ctx: level)  # type: ignore[arg-type]


async def test_no_relay_means_no_question_is_answered() -> None:
    answer = await on_elicitation(None, QUESTION)  # type: ignore[arg-type]
    assert isinstance(answer, types.ErrorData)
    assert "belongs to no call" in answer.message


async def test_questions_go_on_the_calls_stream_and_are_capped() -> None:
    session = FakeSession(types.ClientCapabilities(elicitation=types.ElicitationCapability()))
    relay = relay_for(FakeContext(session))
    async with relaying(relay):
        answers = [await on_elicitation(None, QUESTION) for _ in range(MAX_QUESTIONS + 2)]  # type: ignore[arg-type]
    assert all(isinstance(a, types.ElicitResult) for a in answers[:MAX_QUESTIONS])
    assert all(isinstance(a, types.ErrorData) for a in answers[MAX_QUESTIONS:])
    assert len(session.sent) == MAX_QUESTIONS
    assert {related for _, related in session.sent} == {7}


async def test_a_caller_is_asked_only_what_it_declared() -> None:
    session = FakeSession(types.ClientCapabilities(sampling=types.SamplingCapability()))
    relay = relay_for(FakeContext(session))
    refused = await relay.elicit(QUESTION)
    assert isinstance(refused, types.ErrorData) and refused.message == "Elicitation not supported"
    modern = relay_for(FakeContext(session, protocol_version="2026-07-28"))
    no_roots = await modern.list_roots()
    assert isinstance(no_roots, types.ErrorData) and "2026-07-28" in no_roots.message
    assert session.sent == []


def test_forwarded_capabilities_are_the_relayable_ones() -> None:
    declared = types.ClientCapabilities(
        roots=types.RootsCapability(list_changed=True),
        elicitation=types.ElicitationCapability(form=types.FormElicitationCapability()),
        experimental={"x": {}},
        extensions={"io.example/ext": {}},
    )
    caps = relay_for(FakeContext(FakeSession(declared))).upstream_capabilities()
    assert caps == {"roots": {}, "elicitation": {"form": {}}}
    assert relay_for(FakeContext(FakeSession(None))).upstream_capabilities() == {}


async def test_log_lines_are_filtered_by_level_and_capped() -> None:
    session = FakeSession(None)
    relay = relay_for(FakeContext(session), level="warning")
    for level in ("debug", "info", "warning", "error"):
        await relay.log(types.LoggingMessageNotificationParams(level=level, data=level))
    assert [data for _, data, _ in session.logged] == ["warning", "error"]
    flood = relay_for(FakeContext(FakeSession(None)))
    for _ in range(MAX_LOG_LINES + 5):
        await flood.log(types.LoggingMessageNotificationParams(level="info", data="x"))
    assert len(flood._ctx.session.logged) == MAX_LOG_LINES  # type: ignore[attr-defined]
    # A 2026-07-28 request that did not opt in gets nothing.
    quiet = relay_for(FakeContext(FakeSession(None), protocol_version="2026-07-28"))
    assert quiet.log_level() is None
    opted = relay_for(
        FakeContext(
            FakeSession(None), "2026-07-28", meta={"io.modelcontextprotocol/logLevel": "info"}
        )
    )
    assert opted.log_level() == "info"


async def test_a_call_that_ends_withdraws_its_open_questions() -> None:
    """A question the SDK still runs (in a task of its own) when its call
    ends is cancelled, and one asked after that is refused, not put to the
    caller of a call that is over."""

    @dataclass
    class SlowSession(FakeSession):
        asked: asyncio.Event = field(default_factory=asyncio.Event)

        async def send_request(self, request: Any, result_type: Any, metadata: Any = None) -> Any:
            self.sent.append((request, metadata.related_request_id))
            self.asked.set()
            await asyncio.sleep(30)

    session = SlowSession(types.ClientCapabilities(elicitation=types.ElicitationCapability()))
    relay = relay_for(FakeContext(session))
    async with relaying(relay):
        # What the SDK does: the callback runs in a task spawned from the call's context.
        open_question = asyncio.create_task(on_elicitation(None, QUESTION))  # type: ignore[arg-type]
        late = contextvars.copy_context()
        await asyncio.wait_for(session.asked.wait(), 5)
    answer = await asyncio.wait_for(open_question, 5)
    assert isinstance(answer, types.ErrorData)
    assert "has ended" in answer.message
    after = await asyncio.wait_for(
        late.run(asyncio.create_task, on_elicitation(None, QUESTION)),  # type: ignore[arg-type]
        5,
    )
    assert isinstance(after, types.ErrorData)
    assert len(session.sent) == 1


async def test_an_upstream_gets_no_context_of_the_callers_other_servers() -> None:
    """To the caller's client the gateway is one server: its "thisServer"
    context is every upstream's. An upstream's sampling request therefore
    carries no context of the caller's session, and the caller's
    ``sampling.context`` is not passed on to invite one."""
    declared = types.ClientCapabilities(
        sampling=types.SamplingCapability(context={}, tools={}),
    )
    session = FakeSession(declared)
    relay = relay_for(FakeContext(session))
    assert relay.upstream_capabilities() == {"sampling": {"tools": {}}}
    for context in ("thisServer", "allServers"):
        await relay.sample(
            types.CreateMessageRequestParams(messages=[], max_tokens=5, include_context=context)
        )
    assert [request.params.include_context for request, _ in session.sent] == ["none", "none"]


async def test_a_caller_is_not_asked_in_a_mode_it_did_not_declare() -> None:
    form_only = FakeSession(types.ClientCapabilities(elicitation=types.ElicitationCapability()))
    relay = relay_for(FakeContext(form_only))
    url = types.ElicitRequestURLParams(
        message="Sign in", url="https://example.test/login", elicitation_id="e1"
    )
    refused = await relay.elicit(url)
    assert isinstance(refused, types.ErrorData)
    assert isinstance(await relay.elicit(QUESTION), types.ElicitResult)
    no_tools = FakeSession(types.ClientCapabilities(sampling=types.SamplingCapability()))
    with_tools = types.CreateMessageRequestParams(
        messages=[], max_tokens=5, tools=[types.Tool(name="t", input_schema={"type": "object"})]
    )
    no_sampling = await relay_for(FakeContext(no_tools)).sample(with_tools)
    assert isinstance(no_sampling, types.ErrorData)
    assert form_only.sent[0][0].params == QUESTION and len(form_only.sent) == 1
    assert no_tools.sent == []


async def test_log_lines_are_capped_in_bytes_too() -> None:
    """A thousand lines of a megabyte each (one SSE event's limit) would be a
    gigabyte per call, held in memory while the caller reads slowly."""
    session = FakeSession(None)
    relay = relay_for(FakeContext(session))
    big = "x" * (MAX_LOG_BYTES // 4)
    for _ in range(10):
        await relay.log(types.LoggingMessageNotificationParams(level="info", data=big))
    assert 3 <= len(session.logged) <= 4
    assert sum(len(data) for _, data, _ in session.logged) <= MAX_LOG_BYTES

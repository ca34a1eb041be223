"""The delegation core's send and stream (`gateway.delegation.delegate`), one
piece on its own: a recording stand-in for the pipeline's `record`, real
breakers and retry settings. Every path ends in exactly one record (or none,
for a call handed to a fallback), with what was tried."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import httpx
import pytest

from gateway.delegation.breaker import Breakers, BreakerSettings
from gateway.delegation.delegate import (
    BreakerOpen,
    Delegate,
    Explained,
    HandedOn,
    Sending,
    Streaming,
    UpstreamDown,
)
from gateway.delegation.resilience import Resilience
from gateway.delegation.retry import RetrySettings

UPSTREAM = "agent-1"
PERMIT = object()
# A decoded call as `Delegate.call` reads it (`Records.admit` decides it).
CALL: Any = SimpleNamespace(event="mcp.tools/call")
# One the gateway answers itself (`Delegate.answer`): no inputs for the rules.
ASKED: Any = SimpleNamespace(event="flow.start", inputs=None)


@dataclass
class Records:
    """What `Delegations.record` was asked to write."""

    written: list[tuple[str, str | None]] = field(default_factory=list)
    # Whether each record ended its call (gave back what its admission took).
    ended: list[bool] = field(default_factory=list)

    async def record(
        self,
        permit: Any,
        event: str,
        outcome: str,
        detail: str | None = None,
        *,
        ends_call: bool = True,
    ) -> None:
        self.written.append((outcome, detail))
        self.ended.append(ends_call)

    async def admit(self, call: Any) -> Any:
        """`Delegations.admit`: every call allowed, its permit a stand-in."""
        return PERMIT


class Refused(Exception):
    """The error a door's caller gets."""


def explain(exc: BaseException) -> Explained:
    if isinstance(exc, BreakerOpen):
        return Explained(Refused(f"breaker: {exc}"), "breaker_open", str(exc))
    return Explained(Refused(str(exc)), "upstream_error", f"failed: {exc}")


def core(threshold: int = 5, attempts: int = 3) -> tuple[Delegate, Records]:
    records = Records()
    resilience = Resilience(
        Breakers(BreakerSettings(threshold=threshold, cooldown_seconds=60)),
        RetrySettings(attempts=attempts, base_delay_seconds=0, max_delay_seconds=0),
    )
    return Delegate(records, resilience), records  # type: ignore[arg-type]


def failing(times: int, error: Exception, answer: str = "ok") -> tuple[Any, list[int]]:
    calls = [0]

    async def attempt() -> str:
        calls[0] += 1
        if calls[0] <= times:
            raise error
        return answer

    return attempt, calls


LOST = httpx.ConnectError("connection refused")


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def test_an_answer_is_recorded_once() -> None:
    delegate, records = core()
    attempt, calls = failing(0, LOST, "hello")
    sending = Sending(upstream=UPSTREAM, attempt=attempt, explain=explain)
    assert run(delegate.send(None, "a2a.SendMessage", sending)) == "hello"  # type: ignore[arg-type]
    assert calls == [1] and records.written == [("ok", None)]


def test_only_an_idempotent_call_is_retried_and_the_record_says_how_often() -> None:
    delegate, records = core()
    attempt, calls = failing(2, LOST)
    sending = Sending(upstream=UPSTREAM, attempt=attempt, explain=explain, idempotent=True)
    assert run(delegate.send(None, "e", sending)) == "ok"  # type: ignore[arg-type]
    assert calls == [3] and records.written == [("ok", "after 3 attempts")]

    delegate, records = core()
    attempt, calls = failing(2, LOST)
    once = Sending(upstream=UPSTREAM, attempt=attempt, explain=explain)
    with pytest.raises(Refused):
        run(delegate.send(None, "e", once))  # type: ignore[arg-type]
    assert calls == [1]
    assert records.written == [("upstream_error", "failed: connection refused")]


def test_an_open_breaker_refuses_without_calling_and_is_recorded() -> None:
    delegate, records = core(threshold=1)
    attempt, calls = failing(99, LOST)
    sending = Sending(upstream=UPSTREAM, attempt=attempt, explain=explain)
    with pytest.raises(Refused):
        run(delegate.send(None, "e", sending))  # type: ignore[arg-type]
    with pytest.raises(Refused, match="breaker"):
        run(delegate.send(None, "e", sending))  # type: ignore[arg-type]
    assert calls == [1]
    assert [outcome for outcome, _ in records.written] == ["upstream_error", "breaker_open"]


def test_a_call_that_may_be_handed_off_is_not_recorded_when_the_upstream_is_down() -> None:
    delegate, records = core()
    attempt, _ = failing(9, LOST)
    sending = Sending(upstream=UPSTREAM, attempt=attempt, explain=explain, may_hand_off=True)
    with pytest.raises(UpstreamDown) as down:
        run(delegate.send(None, "e", sending))  # type: ignore[arg-type]
    assert isinstance(down.value.explained.error, Refused) and records.written == []
    # An answer of the upstream's own is not "down": recorded, not handed off.
    answered, _ = failing(9, ValueError("no such skill"))
    sending = Sending(upstream=UPSTREAM, attempt=answered, explain=explain, may_hand_off=True)
    with pytest.raises(Refused):
        run(delegate.send(None, "e", sending))  # type: ignore[arg-type]
    assert records.written == [("upstream_error", "failed: no such skill")]


def test_the_callers_cancellation_is_recorded() -> None:
    delegate, records = core()
    attempted = asyncio.Event()

    async def slow() -> str:
        attempted.set()
        await asyncio.sleep(30)
        return "late"

    async def main() -> None:
        sending = Sending(upstream=UPSTREAM, attempt=slow, explain=explain)
        call = asyncio.ensure_future(delegate.send(None, "e", sending))  # type: ignore[arg-type]
        await asyncio.wait_for(attempted.wait(), 5)  # the call is with its upstream
        call.cancel()
        with pytest.raises(asyncio.CancelledError):
            await call

    run(main())
    assert records.written == [("cancelled", "the caller cancelled")]


def test_an_answer_refused_when_taken_in_is_the_calls_failure_and_not_retried() -> None:
    delegate, records = core()
    attempt, calls = failing(0, LOST, "someone else's task")

    async def accept(answer: str) -> None:
        raise ValueError(f"refused {answer}")

    sending = Sending(
        upstream=UPSTREAM, attempt=attempt, explain=explain, idempotent=True, accept=accept
    )
    with pytest.raises(Refused):
        run(delegate.send(None, "e", sending))  # type: ignore[arg-type]
    assert calls == [1]
    assert records.written == [("upstream_error", "failed: refused someone else's task")]


def _streaming(items: list[Any], **more: Any) -> Streaming[Any]:
    async def events() -> AsyncIterator[Any]:
        for item in items:
            if isinstance(item, Exception):
                raise item
            yield item

    return Streaming(upstream=UPSTREAM, open=events, explain=explain, max_seconds=5, **more)


async def _drain(stream: AsyncIterator[Any]) -> list[Any]:
    return [item async for item in stream]


def test_a_stream_is_recorded_once_at_its_end_and_says_when_it_ran_dry() -> None:
    delegate, records = core()
    seen: list[Any] = []
    closed: list[bool] = []

    async def observe(item: Any) -> None:
        seen.append(item)

    async def on_close(lost: bool) -> None:
        closed.append(lost)

    streaming = _streaming([1, 2, 3], observe=observe, closed=on_close)
    assert run(_drain(delegate.stream(None, "e", streaming))) == [1, 2, 3]  # type: ignore[arg-type]
    assert seen == [1, 2, 3] and closed == [True] and records.written == [("ok", None)]


def test_a_broken_stream_is_recorded_as_its_failure() -> None:
    delegate, records = core()
    streaming = _streaming([1, LOST])
    with pytest.raises(Refused):
        run(_drain(delegate.stream(None, "e", streaming)))  # type: ignore[arg-type]
    assert records.written == [("upstream_error", "failed: connection refused")]


def test_a_stream_the_caller_leaves_is_recorded_ok_and_not_lost() -> None:
    delegate, records = core()
    closed: list[bool] = []

    async def on_close(lost: bool) -> None:
        closed.append(lost)

    async def first_only() -> Any:
        stream = delegate.stream(None, "e", _streaming([1, 2, 3], closed=on_close))  # type: ignore[arg-type]
        item = await anext(stream)
        await stream.aclose()
        return item

    assert run(first_only()) == 1
    assert records.written == [("ok", None)] and closed == [False]


def test_a_stream_past_its_cap_is_cut_and_recorded() -> None:
    delegate, records = core()

    async def forever() -> AsyncIterator[int]:
        while True:
            await asyncio.sleep(0.01)
            yield 1

    def overran() -> Explained:
        return Explained(Refused("too long"), "timeout", "passed the cap")

    streaming: Streaming[int] = Streaming(
        upstream=UPSTREAM, open=forever, explain=explain, max_seconds=0.05, overran=overran
    )
    with pytest.raises(Refused, match="too long"):
        run(_drain(delegate.stream(None, "e", streaming)))  # type: ignore[arg-type]
    assert records.written == [("timeout", "passed the cap")]


def test_a_streams_last_word_is_recorded_before_it_is_passed_on() -> None:
    # The caller hears the task's end only once its record is written (and
    # `Delegations.record` writes it durably); the end of the stream adds none.
    delegate, records = core()
    heard: list[tuple[Any, int]] = []

    async def read() -> None:
        stream = delegate.stream(None, "e", _streaming([1, 2, "end", 3], last=lambda i: i == "end"))  # type: ignore[arg-type]
        async for item in stream:
            heard.append((item, len(records.written)))

    run(read())
    assert heard == [(1, 0), (2, 0), ("end", 1), (3, 1)]
    assert records.written == [("ok", None)]


def test_a_stream_broken_after_its_last_word_keeps_the_one_record() -> None:
    delegate, records = core()
    streaming = _streaming([1, "end", LOST], last=lambda i: i == "end")
    with pytest.raises(Refused):
        run(_drain(delegate.stream(None, "e", streaming)))  # type: ignore[arg-type]
    assert records.written == [("ok", None)]


def test_a_side_that_fails_unexpectedly_is_recorded_and_ends_its_call() -> None:
    """A failure of ``side`` it did not record itself (not a refusal) is
    recorded by `Delegate.call`, once, as the call's end: the record gives
    back what the admission took (a coordination lease)."""
    delegate, records = core()

    async def broken(permit: Any) -> Sending[str]:
        raise RuntimeError("no session")

    with pytest.raises(RuntimeError, match="no session"):
        run(delegate.call(CALL, broken))
    assert records.written == [("error", "not sent: RuntimeError: no session")]
    assert records.ended == [True]


def test_a_sides_own_refusal_keeps_its_one_record() -> None:
    delegate, records = core()

    async def refusing(permit: Any) -> Sending[str]:
        await delegate.record(permit, "mcp.tools/call", "quarantined", "not approved")
        raise Refused("not approved")

    with pytest.raises(Refused):
        run(delegate.call(CALL, refusing))
    assert records.written == [("quarantined", "not approved")]


def test_a_call_whose_side_is_cancelled_is_recorded_cancelled() -> None:
    delegate, records = core()
    waiting = asyncio.Event()

    async def slow(permit: Any) -> Sending[str]:
        waiting.set()
        await asyncio.Event().wait()
        raise AssertionError("not reached")

    async def cancelled() -> None:
        task = asyncio.create_task(delegate.call(CALL, slow))
        await waiting.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    run(cancelled())
    assert records.written == [("cancelled", "the caller cancelled")]


def test_a_call_answered_by_the_gateway_is_recorded_with_its_answers_detail() -> None:
    """`Delegate.answer`: nothing sent upstream, one ``ok`` record."""
    delegate, records = core()
    acted: list[Any] = []

    async def act(permit: Any) -> tuple[str, str]:
        acted.append(permit)
        return "run-1", "run run-1 started"

    assert run(delegate.answer(ASKED, act)) == "run-1"
    assert acted == [PERMIT]
    assert records.written == [("ok", "run run-1 started")] and records.ended == [True]


def test_a_call_answered_by_the_gateway_keeps_its_own_refusal_as_its_one_record() -> None:
    delegate, records = core()

    async def refusing(permit: Any) -> tuple[str, str]:
        await delegate.record(permit, ASKED.event, "invalid_input", "not an object")
        raise ValueError("not an object")

    with pytest.raises(ValueError, match="not an object"):
        run(delegate.answer(ASKED, refusing))
    assert records.written == [("invalid_input", "not an object")]


def test_a_call_with_inputs_is_not_answered_by_the_gateway() -> None:
    """Its coordination leases are given back by its record only: `call`."""
    delegate, records = core()

    async def act(permit: Any) -> tuple[str, str]:
        raise AssertionError("not admitted")

    with_inputs: Any = SimpleNamespace(event="flow.start", inputs=[{}])
    with pytest.raises(ValueError, match="inputs"):
        run(delegate.answer(with_inputs, act))
    assert records.written == []


def test_a_call_held_open_keeps_the_record_its_handler_wrote() -> None:
    """`Delegate.open`: the handler inside sends through `send`, whose record
    -- a failure's too -- is the call's one."""
    delegate, records = core(attempts=1)
    attempt, _ = failing(1, LOST)

    async def held() -> None:
        async with delegate.open(CALL) as permit:
            sending = Sending(upstream=UPSTREAM, attempt=attempt, explain=explain)
            await delegate.send(permit, CALL.event, sending)

    with pytest.raises(Refused):
        run(held())
    assert records.written == [("upstream_error", "failed: connection refused")]


def test_a_call_held_open_whose_handler_failed_unsent_is_recorded_once() -> None:
    delegate, records = core()

    async def held() -> None:
        async with delegate.open(CALL):
            raise RuntimeError("no transport")

    with pytest.raises(RuntimeError):
        run(held())
    assert records.written == [("error", "not sent: RuntimeError: no transport")]
    assert records.ended == [True]


def test_a_call_held_open_and_cancelled_unsent_is_recorded_cancelled() -> None:
    delegate, records = core()
    inside = asyncio.Event()

    async def held() -> None:
        async with delegate.open(CALL):
            inside.set()
            await asyncio.Event().wait()

    async def cancelled() -> None:
        task = asyncio.create_task(held())
        await inside.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    run(cancelled())
    assert records.written == [("cancelled", "the caller cancelled")]


def test_a_look_held_open_that_sent_nothing_writes_nothing() -> None:
    """A body that ends normally recorded what it made: a look (`Call.sends`
    False) made nothing to record, and the core adds nothing."""
    delegate, records = core()

    async def look() -> Any:
        async with delegate.open(CALL) as permit:
            return permit

    assert run(look()) is PERMIT
    assert records.written == []


def test_a_call_held_open_and_handed_on_is_left_to_its_new_holder() -> None:
    """A run another replica took over before this one sent it: its new
    holder's record ends the call (and gives back what it took, under the
    same holder), so nothing is recorded here."""
    delegate, records = core()

    async def held() -> None:
        async with delegate.open(CALL):
            raise HandedOn("taken over")

    with pytest.raises(HandedOn):
        run(held())
    assert records.written == []


def test_a_call_held_open_by_a_stream_its_reader_closed_is_recorded_cancelled() -> None:
    """The holder is an async generator its reader closes before anything
    was sent (`aclose`: GeneratorExit inside it)."""
    delegate, records = core()

    async def events() -> AsyncGenerator[str]:
        async with delegate.open(CALL):
            yield "working"
            yield "never"

    async def read_one() -> None:
        stream = events()
        assert await anext(stream) == "working"
        await stream.aclose()

    run(read_one())
    assert records.written == [("cancelled", "the caller cancelled")]


def test_a_held_call_whose_stream_started_leaves_the_record_to_the_stream() -> None:
    """A reader that stops without closing what it read (a gRPC client gone
    mid-write): the collector closes the generators from the outside in, so
    the held call ends before its stream. The stream, once started, writes
    the call's one record whenever it is closed; the held call writes none."""
    delegate, records = core()

    async def door() -> AsyncGenerator[Any]:
        async with delegate.open(CALL) as permit:
            stream = delegate.stream(permit, CALL.event, _streaming([1, 2, 3]))
            async for item in stream:  # not closed here: left to its finalizer
                yield item

    async def read_one() -> None:
        events = door()
        assert await anext(events) == 1
        await events.aclose()  # the outer one first, as the collector does
        assert records.written == []  # the stream's end has not come yet

    run(read_one())  # the loop's end closes the stream left open
    assert records.written == [("ok", None)]

"""The one delegated call: decide -> mint -> send -> record.

`Delegate` is what every door's upstream call goes through once the door has
decoded its protocol. It owns, in this order and on every path (success, the
upstream's failure, an open breaker, the caller's cancellation):

1. **decide and mint** -- `Delegations.admit(call)`
   (`gateway.delegation.pipeline`): the policy, its rate limits and
   coordination rules, the token for this target only. A refusal is audited
   there and raised as the pipeline's domain error.
2. **send** -- the target adapter's attempt (`Sending.attempt`: the A2A
   client, the MCP session, a gateway-run agent), under the upstream's
   breaker, retried only when the call is idempotent (`retry.run`).
3. **record** -- the audit record under the caller's trace id, with what was
   tried; the coordination rules hear the call's end (`Delegations.record`).

A door never calls the adapter, the breaker, `retry` or the audit writer
itself: it hands the core a `Sending` -- how to make the call and how its
failures read in the door's protocol (`Sending.explain`) -- and maps what the
core raises back into its protocol. A failure that says the upstream is down,
for a call that may be handed to a fallback, is raised as `UpstreamDown`
before anything is recorded, so the handoff's record says where it went.

A door whose handler sends later (the A2A handlers, behind the SDK's) holds
the call open instead (`Delegate.open`): decided and minted on entry, and
ended by one record wherever it is written -- here, if the door's body ended
without one.

Streams are the same call with many answers (`Delegate.stream`): the breaker
hears how the stream opened, each item is observed as it passes, the stream
is closed on any end, and the record is written once: before the item that
ends its task is passed on (`Streaming.last`), else at the stream's end.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from typing import Any, TypeVar, overload

from adapters.core_check import inside_the_core
from adapters.operations import traced, traced_stream
from gateway.connections.errors import UserCredentialUnavailable
from gateway.delegation import retry
from gateway.delegation.breaker import BreakerOpen
from gateway.delegation.call import Call
from gateway.delegation.duration_cap import DurationCap
from gateway.delegation.permits import Grant, Permit
from gateway.delegation.pipeline import Delegations
from gateway.delegation.resilience import Resilience
from gateway.delegation.retry import Attempts, Failure, UpstreamStatus
from gateway.delegation.sending import Explained, HandedOn, Sending, Streaming, UpstreamDown
from policies.policy import Target

# What a door's `Sending.explain` and `Sending.classify` read: the core's
# words for an open breaker, a failure's kind and a 5xx answer.
__all__ = [
    "BreakerOpen",
    "Delegate",
    "Explained",
    "Failure",
    "HandedOn",
    "Sending",
    "Streaming",
    "UpstreamDown",
    "UpstreamStatus",
    "classify",
]
classify = retry.classify

T = TypeVar("T")
CANCELLED = ("cancelled", "the caller cancelled")


def tried_note(attempts: Attempts) -> str:
    return f"; after {attempts.made} attempts" if attempts.made > 1 else ""


def _joined(*details: str | None) -> str | None:
    """The record's detail: its non-empty parts, "; " between them."""
    parts = [part.strip("; ") for part in details if part]
    return "; ".join(part for part in parts if part)[:500] or None


@dataclass
class _Streamed:
    """Where one stream (`Delegate.stream`) stands."""

    went: str  # the credential it went with (`Sending.went_with`)
    started: bool = False  # an item came: the breaker heard it opened
    lost: bool = False  # it ended before its caller was done with it
    failed: Explained | None = None
    recorded: bool = False  # its one record is written


class Delegate:
    """Decide, mint, send and record: see the module's docstring."""

    def __init__(self, delegations: Delegations, resilience: Resilience) -> None:
        self.delegations = delegations
        self.resilience = resilience
        # The calls held open (`open`), by their permit's identity: whether
        # one was recorded yet.
        self._open: dict[int, bool] = {}

    async def record(
        self,
        permit: Permit,
        event: str,
        outcome: str,
        *details: str | None,
        ends_call: bool = True,
    ) -> None:
        """The call's audit record (a refusal of the door's own, before or
        after sending, goes through here too): a door records a permit's
        outcome here, never through `Delegations.record` (the audit writer
        checks, `adapters.core_check`)."""
        detail = _joined(*details)
        if id(permit) in self._open:
            self._open[id(permit)] = True
        with inside_the_core():
            await self.delegations.record(permit, event, outcome, detail, ends_call=ends_call)

    async def _before(
        self,
        permit: Permit,
        event: str,
        before: Callable[[], Awaitable[None]],
        explain: Callable[[BaseException], Explained],
        note: str = "",
    ) -> None:
        """Get the call's credential before anything is sent; a failure is
        the call's, recorded (`Sending.before`)."""
        try:
            await before()
        except asyncio.CancelledError:
            await asyncio.shield(self.record(permit, event, *CANCELLED, note))
            raise
        except UserCredentialUnavailable as missing:
            await self.record(permit, event, missing.outcome, missing.reason)
            raise
        except Exception as exc:
            explained = explain(exc)
            await self.record(permit, event, explained.outcome, explained.detail)
            raise explained.error from None

    @overload
    async def call(self, call: Call[str], side: Callable[[Grant], Awaitable[Sending[T]]]) -> T: ...

    @overload
    async def call(
        self, call: Call[Target], side: Callable[[Permit], Awaitable[Sending[T]]]
    ) -> T: ...

    async def call(self, call: Call[Any], side: Callable[[Any], Awaitable[Sending[T]]]) -> T:
        """The whole of one call, in order: decide and mint
        (`Delegations.admit`; a refusal is audited there and raised), the
        target's side of it (``side``: how to make this call with its permit;
        a refusal of the target's own -- a tool not approved, a server not
        connected -- is recorded there through `record` and raised), then
        `send`: sent under the breaker, retried when idempotent, recorded.
        Any other end of ``side`` (the caller's cancellation, an unexpected
        error) is recorded here, which gives back what the admission took."""
        async with self.open(call) as permit:
            # Not marked as the core's (`adapters.core_check`): ``side`` sends
            # nothing; its refusals are recorded through `record`, which is.
            sending = await side(permit)
        return await self.send(permit, call.event, sending)

    @overload
    def open(self, call: Call[str]) -> AbstractAsyncContextManager[Grant]: ...

    @overload
    def open(self, call: Call[Target]) -> AbstractAsyncContextManager[Permit]: ...

    def open(self, call: Call[Any]) -> AbstractAsyncContextManager[Any]:
        """One call held open while a door makes it through a handler that
        sends later (`send`, `stream`): decided and minted (a refusal audited
        and raised as `call`'s is), then the body with the permit. The call
        ends with one record wherever it is written: an end of the body that
        recorded nothing (an error before anything was sent, the caller's
        cancellation) is recorded here, unless it was `HandedOn`; a body that
        ends normally recorded what it made -- or nothing, for a look that
        sends nothing (`Call.sends` False)."""
        return self._opened(call)

    @asynccontextmanager
    async def _opened(self, call: Call[Any]) -> AsyncIterator[Any]:
        permit = await self.delegations.admit(call)
        key = id(permit)  # held below: no other permit takes its identity
        self._open[key] = False
        try:
            yield permit
        except HandedOn:
            raise  # its new holder ends it
        except BaseException as exc:
            if not self._open[key]:
                await asyncio.shield(self._unsent(permit, call.event, exc))
            raise
        finally:
            del self._open[key]

    @overload
    async def answer(
        self, call: Call[str], act: Callable[[Grant], Awaitable[tuple[T, str]]]
    ) -> T: ...

    @overload
    async def answer(
        self, call: Call[Target], act: Callable[[Permit], Awaitable[tuple[T, str]]]
    ) -> T: ...

    async def answer(self, call: Call[Any], act: Callable[[Any], Awaitable[tuple[T, str]]]) -> T:
        """A call the gateway answers itself, nothing sent upstream now (a
        resource subscription, whose notices come later; a flow run's
        start): decided and minted (a refusal audited and raised as `call`'s
        is), then ``act`` with the permit -- its refusals recorded there
        through `record` and raised -- and its answer recorded ``ok`` with
        the detail ``act`` gives. Any other end of ``act`` is raised
        unrecorded (a flow run started already: its start was recorded),
        which is why such a call may carry no ``inputs``: it takes no
        coordination lease that only its record would give back."""
        if call.inputs is not None:
            raise ValueError("a call with inputs for the coordination rules goes through call()")
        permit = await self.delegations.admit(call)
        answer, detail = await act(permit)
        await self.record(permit, call.event, "ok", detail)
        return answer

    async def _unsent(self, permit: Permit, event: str, exc: BaseException) -> None:
        """The record of a call ``side`` ended unsent without recording it
        (a stream its reader left, closed from outside: as cancelled)."""
        if isinstance(exc, (asyncio.CancelledError, GeneratorExit)):
            await self.record(permit, event, *CANCELLED)
        else:
            await self.record(permit, event, "error", f"not sent: {type(exc).__name__}: {exc}")

    async def send(self, permit: Permit, event: str, sending: Sending[T]) -> T:
        """Make the call under the upstream's breaker, retried when idempotent;
        record its outcome; return the answer or raise the door's error."""
        # The adapters' send entry points check that they run under this
        # (`adapters.core_check`): a door's `attempt` runs nowhere else.
        with inside_the_core():
            return await self._send(permit, event, sending)

    async def _send(self, permit: Permit, event: str, sending: Sending[T]) -> T:
        attempts = Attempts()
        if sending.before is not None:
            await self._before(permit, event, sending.before, sending.explain, sending.note)
        # Which credential it went with comes first: a long error cannot cut it off.
        went = sending.went_with() if sending.went_with is not None else ""
        note = sending.note
        try:
            result = await retry.run(
                traced(sending.operation, sending.attempt, self.resilience.upstream_listeners),
                upstream=sending.upstream,
                breakers=self.resilience.breakers,
                idempotent=sending.idempotent,
                settings=self.resilience.retry,
                attempts=attempts,
                classify=sending.classify,
                counts=sending.counts,
            )
        except asyncio.CancelledError:
            # The caller went away; the upstream request went with it. The
            # record is written even while cancelled.
            outcome, detail = CANCELLED
            await asyncio.shield(self.record(permit, event, outcome, went, detail, note))
            raise
        except Exception as exc:
            explained = sending.explain(exc)
            tried = tried_note(attempts)
            down = isinstance(exc, BreakerOpen) or (
                attempts.last_failure is Failure.UNREACHED
                or (sending.idempotent and attempts.last_failure is Failure.TRANSIENT)
            )
            if down and sending.may_hand_off:
                raise UpstreamDown(explained, tried) from None
            await self.record(permit, event, explained.outcome, went, explained.detail, tried, note)
            raise explained.error from None
        if sending.accept is not None:
            try:
                await sending.accept(result)
            except Exception as exc:
                explained = sending.explain(exc)
                await self.record(permit, event, explained.outcome, went, explained.detail, note)
                raise explained.error from None
        outcome, detail = sending.recorded(result)
        await self.record(permit, event, outcome, went, detail, tried_note(attempts), note)
        return result

    async def _stream_record(
        self,
        permit: Permit,
        event: str,
        streaming: Streaming[T],
        went: str,
        failed: Explained | None,
    ) -> None:
        if failed is None:
            outcome, detail = streaming.recorded()
            await self.record(permit, event, outcome, went, detail)
        else:
            await self.record(permit, event, failed.outcome, went, failed.detail)

    async def stream(
        self, permit: Permit, event: str, streaming: Streaming[T]
    ) -> AsyncGenerator[T]:
        """Pass a stream's items through as they arrive (each observed first).

        Not retried, nor moved once started. The breaker hears how the stream
        opened, only. The stream is closed -- and the upstream connection with
        it -- when the caller goes away, at the duration cap, or on any
        error; then the one record is written."""
        if id(permit) in self._open:
            # Held open: from here on this stream's end writes the record,
            # however late its reader closes it (`open` writes none).
            self._open[id(permit)] = True
        state = _Streamed(await self._stream_opening(permit, event, streaming))
        breakers = self.resilience.breakers
        listeners = self.resilience.upstream_listeners
        stream = traced_stream(streaming.operation, streaming.open, listeners)()
        cap = DurationCap(streaming.max_seconds)
        try:
            while True:
                try:
                    # Marked for each step, never across a `yield` (the
                    # variable would follow this generator's consumer).
                    with inside_the_core():
                        item = await cap.next(stream)
                except StopAsyncIteration:
                    state.lost = True
                    break
                except TimeoutError:
                    state.lost = True
                    if streaming.overran is None:
                        raise
                    state.failed = streaming.overran()
                    raise state.failed.error from None
                except Exception as exc:
                    state.lost = True
                    if not state.started:
                        retry.report(breakers, streaming.upstream, exc)
                    state.failed = streaming.explain(exc)
                    raise state.failed.error from None
                await self._stream_took(permit, event, streaming, state, item)
                yield item
        finally:
            cap.close()
            aclose = getattr(stream, "aclose", None)
            if aclose is not None:
                with inside_the_core():
                    await aclose()
            if not state.recorded:
                # Written even while cancelled (an MCP client's cancel cancels again).
                record = self._stream_record(permit, event, streaming, state.went, state.failed)
                await asyncio.shield(record)
            if streaming.closed is not None:
                # Whether the upstream's side ended it: ran dry, overran, broke.
                await streaming.closed(state.lost)

    async def _stream_took(
        self, permit: Permit, event: str, streaming: Streaming[T], state: _Streamed, item: T
    ) -> None:
        """An item taken in before it is passed on: the breaker told of a
        stream that opened, the item observed, the call recorded with the
        item that holds its outcome (`Streaming.last`)."""
        if not state.started:
            state.started = True
            self.resilience.breakers.success(streaming.upstream)
        if streaming.observe is not None:
            try:
                await streaming.observe(item)
            except Exception as exc:
                state.failed = streaming.explain(exc)
                raise
        if not state.recorded and streaming.last is not None and streaming.last(item):
            state.recorded = True  # its outcome is in this item: recorded before it goes
            await self._stream_record(permit, event, streaming, state.went, None)

    async def _stream_opening(self, permit: Permit, event: str, streaming: Streaming[T]) -> str:
        """Before a stream opens: its upstream's breaker asked, the call's
        credential got (each refusal recorded and raised); which credential
        it goes with (`Sending.went_with`)."""
        try:
            self.resilience.breakers.check(streaming.upstream)
        except BreakerOpen as exc:
            explained = streaming.explain(exc)
            await self.record(permit, event, explained.outcome, explained.detail)
            raise explained.error from None
        if streaming.before is not None:
            with inside_the_core():
                await self._before(permit, event, streaming.before, streaming.explain)
        return streaming.went_with() if streaming.went_with is not None else ""

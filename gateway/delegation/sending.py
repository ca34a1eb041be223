"""What a door hands the delegation core (`gateway.delegation.delegate`).

A `Sending` is the target adapter's half of one call -- how to make it, and
what its failures mean to the door that asked (`Explained`); a `Streaming`
is the same for a call answered by a stream. `UpstreamDown` is what the core
raises, unrecorded, for a call a door may hand to a fallback.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from adapters.operations import Operation
from gateway.delegation import retry
from gateway.delegation.retry import Failure

T = TypeVar("T")


@dataclass(frozen=True)
class Explained:
    """A failure as the door says it: the error its caller gets, and the audit
    record's outcome and detail."""

    error: BaseException
    outcome: str
    detail: str


def answered(_: object) -> tuple[str, str]:
    """The record of an answer that is not a failure: outcome ``ok``."""
    return "ok", ""


@dataclass(frozen=True)
class Sending(Generic[T]):
    """The target adapter's half of one call: how to make it, and what its
    failures mean to the door that asked."""

    upstream: str  # the breaker's key: the agent's or the MCP server's id
    attempt: Callable[[], Awaitable[T]]
    explain: Callable[[BaseException], Explained]
    idempotent: bool = False
    # Before the first attempt: getting the credential the call goes with (the
    # user's own token from their connected account, or from their identity
    # provider). `UserCredentialUnavailable` here is the call's refusal --
    # recorded, neither retried nor held against the upstream's breaker,
    # raised as it is for the door to say in its protocol; nothing is sent.
    before: Callable[[], Awaitable[None]] | None = None
    # Asked once `before` has run, appended to the call's records: which of the
    # user's credentials it went with (a connection's id, its scopes and the
    # token's fingerprint -- never a token).
    went_with: Callable[[], str] | None = None
    # Taking the answer in (recording the task it names): after the send,
    # before the record; a failure here is the call's, recorded, but neither
    # retried nor held against the upstream's breaker.
    accept: Callable[[T], Awaitable[None]] | None = None
    # What an answer's record says (an MCP tool's own failure is an answer).
    recorded: Callable[[T], tuple[str, str]] = answered
    classify: Callable[[BaseException], Failure] = retry.classify
    counts: Callable[[Failure], bool] = retry.counts_against
    # Raise `UpstreamDown` (unrecorded) when the upstream is down, for the
    # door to hand the call to a fallback (`gateway.delegation.handoffs`).
    may_hand_off: bool = False
    # Appended to every record of this call (a fallback's "for whom").
    note: str = ""
    # What the call is in OpenTelemetry's conventions: each attempt a CLIENT
    # span, its duration told to `Resilience.upstream_listeners` (metrics).
    operation: Operation | None = None


@dataclass(frozen=True)
class Streaming(Generic[T]):
    """A call answered by a stream: how to open it, and what each item and
    each failure mean. ``max_seconds`` caps the stream's whole duration."""

    upstream: str
    open: Callable[[], AsyncIterator[T]]
    explain: Callable[[BaseException], Explained]
    max_seconds: float
    # Each item before it is passed on; raising ends the stream with that error.
    observe: Callable[[T], Awaitable[None]] | None = None
    # The stream's duration cap passed: the error the caller gets.
    overran: Callable[[], Explained] | None = None
    # The record of a stream that ended well, asked at its end.
    recorded: Callable[[], tuple[str, str]] = lambda: ("ok", "")
    # Whether an item (observed) is the stream's last word -- its task's end:
    # the record is then written, durably, before the item is passed on, as a
    # call's is before its answer; else at the stream's end.
    last: Callable[[T], bool] | None = None
    # Called once the stream has ended, however (after its record), with
    # whether the upstream's side ended it (ran dry, overran, broke) rather
    # than the caller or an item `observe` refused.
    closed: Callable[[bool], Awaitable[None]] | None = None
    # As `Sending.before` and `Sending.went_with`.
    before: Callable[[], Awaitable[None]] | None = None
    went_with: Callable[[], str] | None = None
    # As `Sending.operation`: the stream, open to end, is one operation.
    operation: Operation | None = None


class UpstreamDown(Exception):
    """The upstream is down and the call may be handed off; not recorded yet."""

    def __init__(self, explained: Explained, tried: str) -> None:
        super().__init__(explained.detail)
        self.explained = explained
        self.tried = tried


class HandedOn(Exception):
    """A call held open (`Delegate.open`) that is another's to end now -- a
    run another replica took over before this one sent it: it ends here with
    no record, since its new holder's record ends it (and gives back what its
    decision took, under the same holder)."""

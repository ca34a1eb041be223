"""Keeping the policy's coordination rules (`policies.coordination`) for the
calls the gateway admits: the state of every hold, cooldown, exclusive lease
and budget, shared by every replica -- in the gateway's database
(`coordination_sql`), or in Redis when `redis_url` is set (`coordination_redis`,
one round trip per call).

`take()` runs inside the delegation decision (`Delegations._coordinate`,
after the policy allowed the call and its rate limits counted it, before it is
made) as one atomic step: it refuses a call a hold or cooldown in force
blocks, takes the call's leases and budget units, opens and closes holds --
all of it or, when one rule refuses, none of it. `finished()` runs when the
call's outcome is recorded: it gives the leases back and, when the call
succeeded, starts the cooldowns that follow it. Both stores keep exactly the
same rules (`tests/gateway/delegation/test_coordination_model.py` holds each to one
reference model).

The store unreachable: the call fails as any other would (a 503), unlike a
rate limit's counter store. A coordination rule keeps agents from acting on
the same customer at once; letting calls through blind would break the very
promise the rule was written for (docs/coordination.md).
"""

from __future__ import annotations

import contextlib
import logging
import math
import secrets
import time
from collections.abc import Callable, Iterable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, Protocol

from gateway.delegation.audit import AuditLog
from gateway.delegation.audit_records import AuditEvent
from gateway.delegation.permits import Admitted, Caller
from policies.coordination import Keyed, Plan
from policies.coordination_rules import CoordinationPolicy

# The holder a deferred call, released, takes its reserved lease as
# (`Coordination.reserve`): set around the released call's decision by what
# makes it (`gateway.agents.approved`, `gateway.mcp.approvals`), read by
# `Coordination.take` -- the decision every call goes through stays one.
_CLAIMING: ContextVar[str | None] = ContextVar("coordination_claiming", default=None)


def approval_holder(approval_id: str) -> str:
    """The holder an approved (or released) call's leases are taken as."""
    return f"approval:{approval_id}"


@contextlib.contextmanager
def claiming(approval_id: str) -> Iterator[None]:
    """Decide the approved call ``approval_id`` as the holder of what was
    reserved for it."""
    token = _CLAIMING.set(approval_holder(approval_id))
    try:
        yield
    finally:
        _CLAIMING.reset(token)


logger = logging.getLogger(__name__)

AUDIT_EVENT = "coordination"
# Every reason a rule gives starts so (`Blocked.reason`): what a held call's
# stored reasons say it waits for.
DEFERRED_PREFIX = "coordination rule "
# How long a lease reserved for a released deferred call waits for it.
RESERVED_SECONDS = 30.0


@dataclass(frozen=True)
class StateRow:
    """What one rule keeps for one key: a hold, a cooldown, a lease, or a
    budget's count in one period (``slot``)."""

    rule: str
    key: str
    slot: int
    kind: str
    entity: str
    until: float  # epoch seconds
    opened_at: float
    count: int
    holder: str | None
    subject: str | None
    agent: str | None
    action: str | None
    trace_id: str | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "rule": self.rule,
            "kind": self.kind,
            "entity": self.entity,
            "key": self.key,
            "until": iso(self.until),
            "opened_at": iso(self.opened_at),
            "count": self.count,
            "opened_by": {"subject": self.subject, "agent": self.agent, "action": self.action},
            "trace_id": self.trace_id,
        }


def new_row(keyed: Keyed, admitted: Admitted, now: float, slot: int, until: float) -> StateRow:
    return StateRow(
        rule=keyed.rule,
        key=keyed.key,
        slot=slot,
        kind=keyed.kind,
        entity=keyed.entity,
        until=until,
        opened_at=now,
        count=1,
        holder=admitted.holder,
        subject=admitted.caller.subject,
        agent=admitted.agent,
        action=admitted.action,
        trace_id=admitted.trace_id,
    )


@dataclass(frozen=True)
class Blocked:
    """Why a call may not be made now, and until when."""

    rule: Keyed
    until: float  # epoch seconds
    detail: str
    now: float  # when it was found

    @property
    def retry_after(self) -> int:
        """Whole seconds, at least 1 (RFC 9110 §10.2.3)."""
        return max(1, math.ceil(self.until - self.now))

    def reason(self) -> str:
        return (
            f"{DEFERRED_PREFIX}{self.rule.rule} ({self.rule.kind}) on "
            f"{self.rule.entity} {self.rule.key}: {self.detail}, until {iso(self.until)}"
        )


def blocked_by(keyed: Keyed, row: StateRow, now: float) -> Blocked:
    """A hold open, a cooldown running, or a lease held by ``row``."""
    since = f"since {iso(row.opened_at)}, by a call to {row.agent} {row.action or ''}".rstrip()
    what = {"hold": "a hold is open", "cooldown": "a cooldown runs"}.get(
        keyed.kind, "another call is in flight"
    )
    return Blocked(keyed, row.until, f"{what} ({since})", now)


def spent(keyed: Keyed, now: float) -> Blocked:
    """A budget's calls for this period all made."""
    until = (int(now // keyed.seconds) + 1) * keyed.seconds
    return Blocked(keyed, until, f"{keyed.limit} calls per {_span(keyed)} made", now)


class CoordinationBlocked(Exception):
    def __init__(self, blocked: Blocked) -> None:
        super().__init__(blocked.reason())
        self.blocked = blocked


class Store(Protocol):
    """Where the state lives; each operation is atomic."""

    async def take(self, admitted: Admitted, now: float) -> None:
        """Check, and take what the plan asks (leases, budget units). Raises
        `CoordinationBlocked` having taken nothing."""

    async def give_back(
        self, admitted: Admitted, succeeded: bool, now: float
    ) -> tuple[list[Keyed], list[Keyed]]:
        """Drop the call's leases; if it succeeded, close and open its holds
        and start its cooldowns (one atomic step: no instant between a hold
        closing and the cooldown after it starting). The holds it opened and
        closed."""

    async def blocking(self, plan: Plan, now: float) -> list[Blocked]:
        """What holds a call back now, taking nothing."""

    async def rows(self, entity: str | None, key: str | None, now: float) -> list[StateRow]:
        """What is in force (at most 1,000 rows)."""

    async def remove(self, rule: str, key: str, now: float) -> list[StateRow]:
        """End what ``rule`` keeps for ``key``; the rows that were in force."""

    async def purge(self, now: float) -> int:
        """Drop spent rows."""

    async def rekey(self, canonical: Canonical, now: float) -> int:
        """Move every row in force whose key is not ``canonical`` to the key
        that is, merged with what is kept there already (the later end, and
        for a budget the sum of the counts); how many moved."""

    async def aclose(self) -> None:
        """Let go of what the store holds (connections, a thread)."""


class Canonical(Protocol):
    """An entity's key as it is compared (`CoordinationPolicy.canonical`)."""

    def __call__(self, entity: str, key: str) -> str: ...


def merged(kept: StateRow, moved: StateRow) -> StateRow:
    """What one key keeps once a row kept under another spelling of it joins:
    in force until the later of the two ends; a budget's period counts both."""
    count = kept.count + moved.count if kept.kind == "budget" else max(kept.count, moved.count)
    return replace(kept, until=max(kept.until, moved.until), count=count)


class Coordination:
    def __init__(
        self, store: Store, audit: AuditLog, clock: Callable[[], float] = time.time
    ) -> None:
        self.store = store
        self.audit = audit
        self.clock = clock  # epoch seconds; every replica's clock is NTP-kept
        self._ended: dict[str, None] = {}  # the calls whose outcome counted (insertion order)

    async def take(
        self, plan: Plan, caller: Caller, agent: str, action: str | None, trace_id: str
    ) -> Admitted:
        """Take what ``plan`` asks for, or raise `CoordinationBlocked` having
        taken nothing."""
        holder = _CLAIMING.get() or secrets.token_hex(16)
        admitted = Admitted(holder, plan, caller, agent, action, trace_id)
        await self.store.take(admitted, self.clock())
        return admitted

    async def reserve(
        self,
        leases: tuple[Keyed, ...],
        approval_id: str,
        caller: Caller,
        agent: str,
        action: str | None,
        trace_id: str,
    ) -> bool:
        """Take ``leases`` for the deferred call ``approval_id`` as it is
        released (`gateway.delegation.deferrals`), so that no other call gets
        the entity between its release and its making; the released call
        takes them over (`claiming`), or they end at their ttl. False when
        one is taken (none is then)."""
        # Reserved for a while only: a released call is made at once (A2A) or
        # when its client comes back for it (MCP); one never made, or failing
        # before it is, must not keep the entity from everyone until the
        # rule's ttl. Taken over, a lease runs its full ttl again.
        held = tuple(replace(k, seconds=min(k.seconds, RESERVED_SECONDS)) for k in leases)
        try:
            with claiming(approval_id):
                await self.take(Plan(leases=held), caller, agent, action, trace_id)
        except CoordinationBlocked:
            return False
        return True

    async def finished(self, admitted: Admitted, succeeded: bool) -> None:
        """The call's outcome is recorded: its leases go back; its success
        closes and opens holds and starts cooldowns. Only the first outcome
        recorded for a call counts (a gateway-run task is recorded when it is
        accepted and when it ends; a polled task at every poll).

        The store unreachable now: logged, not raised -- the call was made
        and its answer stands; its leases end at their ttl, but what its
        success should have done is not done (the error says what)."""
        if admitted.holder in self._ended:
            return
        self._ended[admitted.holder] = None
        if len(self._ended) > 10_000:
            del self._ended[next(iter(self._ended))]
        plan = admitted.plan
        effects = plan.opens or plan.closes or plan.cools
        if not plan.leases and not (succeeded and effects):
            return
        try:
            opened, closed = await self.store.give_back(admitted, succeeded, self.clock())
        except Exception as exc:
            lost = ", ".join(k.rule for k in (*plan.opens, *plan.closes, *plan.cools))
            logger.error(
                "coordination state not updated after a call to %s (%s): leases end at their "
                "ttl; holds not opened or closed, cooldowns not started: %s",
                admitted.agent,
                exc,
                (lost if succeeded else "") or "none",
            )
            return
        await self._audit_holds(admitted, closed, "hold_closed")
        await self._audit_holds(admitted, opened, "hold_opened")
        if succeeded:
            await self._audit_holds(admitted, plan.cools, "cooldown_started")

    async def state(self, plan: Plan) -> list[Blocked]:
        """What would hold ``plan``'s call back now, counting nothing (explain)."""
        return await self.store.blocking(plan, self.clock())

    async def list(self, entity: str | None = None, key: str | None = None) -> list[StateRow]:
        """The holds, cooldowns, leases and budget counts in force."""
        return await self.store.rows(entity, key, self.clock())

    async def keeps(self, rule: str, entity: str, key: str) -> bool:
        """Whether ``rule`` keeps anything in force for ``entity`` ``key``."""
        return any(row.rule == rule for row in await self.list(entity, key))

    async def release(self, rule: str, key: str, by: str) -> int:
        """An admin ends what ``rule`` keeps for ``key`` (a hold, a cooldown,
        a stuck lease, a budget's count); how many were in force."""
        live = await self.store.remove(rule, key, self.clock())
        for row in live:
            await self.audit.record(
                AuditEvent(
                    event=AUDIT_EVENT,
                    trace_id=row.trace_id or secrets.token_hex(16),
                    subject=by,
                    subject_issuer="admin",
                    decision="allow",
                    outcome="released",
                    target=row.agent,
                    action=row.action,
                    reasons=(f"rule {rule} ({row.kind}) on {row.entity} {key}",),
                    detail=f"released by {by}",
                )
            )
        return len(live)

    async def purge(self) -> int:
        """Drop spent rows (retention)."""
        return await self.store.purge(self.clock())

    async def canonicalise(self, rules: CoordinationPolicy) -> int:
        """Re-key what is kept under a spelling that is not canonical (state
        written before keys were canonicalised, issue 32): without it, a hold
        on `CU-1` would no longer hold a call naming `CU-1`, read as `cu-1`.
        Idempotent; how many rows moved."""
        return await self.store.rekey(rules.canonical, self.clock())

    async def _audit_holds(self, admitted: Admitted, rules: Iterable[Keyed], outcome: str) -> None:
        caller = admitted.caller
        for keyed in rules:
            await self.audit.record(
                AuditEvent(
                    event=AUDIT_EVENT,
                    trace_id=admitted.trace_id,
                    subject=caller.subject,
                    subject_issuer=caller.issuer,
                    client_id=caller.client_id,
                    actors=caller.actors,
                    decision="allow",
                    outcome=outcome,
                    target=admitted.agent,
                    action=admitted.action,
                    reasons=(f"rule {keyed.rule} ({keyed.kind}) on {keyed.entity} {keyed.key}",),
                )
            )


def _span(keyed: Keyed) -> str:
    seconds = int(keyed.seconds)
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds % size == 0:
            count = seconds // size
            return f"{count} {unit}{'s' if count != 1 else ''}"
    return f"{seconds} s"


def iso(epoch: float) -> str:
    """An instant as the API shows it (UTC, to the second)."""
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="seconds")

"""What an allowed call may still be refused by after the policy's decision,
before it is made: the rate limits (the policy's and an API key's own) and
the coordination rules -- each refusal audited as the caller is told it.
A part of `gateway.delegation.pipeline.Delegations`."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace
from typing import Any, TypeVar

from gateway.delegation.audit import AuditLog
from gateway.delegation.coordinate import coordinate
from gateway.delegation.coordination import Coordination
from gateway.delegation.decision_records import decision_event
from gateway.delegation.permits import Caller, DelegationDenied, Permit, RateLimited
from gateway.delegation.rate_limits import RateLimits
from policies.api_keys import is_key_actor
from policies.limits import AppliedLimit, CallFacts, applicable
from policies.policy import ActionKind, Decision, Denial, Target
from policies.policy_file import PolicySource

P = TypeVar("P", bound=Permit)


class AfterDecision:
    policy: PolicySource
    audit: AuditLog
    rate_limits: RateLimits
    coordination: Coordination | None
    # An API key's own rate limit, by the actor it names (`ApiKeys.rate_of`).
    key_limits: Callable[[str], tuple[AppliedLimit, ...]]
    # Why a key's call may not go on (`ApiKeys.unusable`): revoked, expired, gone.
    key_unusable: Callable[[str], Awaitable[str | None]] | None
    # An API key's budget (`ApiKeys.spend_on`): a call's price taken from
    # it, by (actor, target, action); None when paid, else why not.
    key_spend: Callable[[str, str, str | None], Awaitable[str | None]] | None

    async def _key_usable(self, caller: Caller, target: Target, *facts: Any) -> None:
        """Refuse (audited) the call of an API key revoked, expired or gone
        since -- a call approved later, or made onwards with a token minted
        for the key, is decided again here. ``facts``: the rest of `_refuse`'s."""
        if self.key_unusable is None:
            return
        if (why := await self.key_unusable(caller.client_id)) is not None:
            said = await self._refused_after(caller, target, why, "key_unusable", *facts)
            raise DelegationDenied(target.agent_id, said)

    async def _key_paid(self, caller: Caller, target: Target, *facts: Any) -> None:
        """Take the call's price from the key's budget, or refuse it (audited)."""
        action = facts[0]
        if self.key_spend is None:
            return
        if unpaid := await self.key_spend(caller.client_id, target.agent_id, action):
            said = await self._refused_after(caller, target, unpaid, "budget_spent", *facts)
            raise DelegationDenied(target.agent_id, said)

    async def _refused_after(
        self,
        caller: Caller,
        target: Target,
        why: str,
        outcome: str,
        action: str | None,
        decision: Decision,
        event: str,
        trace_id: str,
        requested: frozenset[str] | None,
        started: float,
        kind: ActionKind,
    ) -> Decision:
        """The allowed ``decision`` turned into a refusal for ``why``, audited
        (`_refuse`): what the caller is told, raised by the caller."""
        refused = replace(decision, allowed=False, granted=frozenset())
        return await self._refuse(
            caller,
            target,
            action,
            refused,
            event,
            trace_id,
            requested,
            started,
            why,
            outcome,
            kind=kind,
        )

    def limits_for(
        self, caller: Caller, agent_id: str, action: str | None
    ) -> tuple[AppliedLimit, ...]:
        """The policy's rate limits that count a call (`policies.limits`)."""
        facts = CallFacts(caller.subject, caller.client_id or "", agent_id, action or "")
        own = self.key_limits(caller.client_id) if is_key_actor(caller.client_id) else ()
        return applicable(self.policy.current.limits, facts, action) + own

    async def _count(
        self,
        caller: Caller,
        target: Target,
        action: str | None,
        decision: Decision,
        event: str,
        trace_id: str,
        requested: frozenset[str] | None,
        started: float,
        kind: ActionKind,
    ) -> None:
        reached = await self.rate_limits.hit(self.limits_for(caller, target.agent_id, action))
        if reached is None:
            return
        limited = await self._refused_after(
            caller,
            target,
            reached.reason(),
            "rate_limited",
            action,
            decision,
            event,
            trace_id,
            requested,
            started,
            kind,
        )
        raise RateLimited(target.agent_id, limited, reached.retry_after)

    async def _coordinate(self, permit: P, inputs: Sequence[Any] | None, event: str) -> P:
        """Keep the policy's coordination rules for a call about to be made
        (`gateway.delegation.coordination`): ``permit`` with what they gave
        it. A call they hold back, or whose input does not name the entity
        they need, is audited and refused. ``inputs``: what the call hands
        the agent (a message's data parts, a tool's arguments)."""
        rules = self.policy.current.coordination
        if inputs is None or not rules or self.coordination is None:
            return permit
        target, action = permit.target_id, permit.action
        refuse = functools.partial(
            self._refuse,
            permit.caller,
            Target(target),
            action,
            replace(permit.decision, allowed=False, granted=frozenset()),
            event,
            permit.trace_id,
            permit.requested,
            permit.started,
            kind=permit.kind,
        )
        return await coordinate(rules, self.coordination, permit, inputs, refuse)

    async def _refuse(
        self,
        caller: Caller,
        target: Target,
        action: str | None,
        decision: Decision,
        event: str,
        trace_id: str,
        requested: frozenset[str] | None,
        started: float,
        reason: str,
        outcome: str = "rate_limited",
        *,
        kind: ActionKind = "skill",
    ) -> Decision:
        """Audit an allowed call refused after the policy's decision (a rate
        limit, a coordination rule): the refusal, as the caller is told it."""
        denial = {
            "rate_limited": Denial.RATE_LIMITED,
            "budget_spent": Denial.BUDGET,
            "key_unusable": Denial.POLICY,
        }.get(outcome, Denial.COORDINATION)
        refused = replace(decision, reasons=(reason,), denial=denial)
        await self.audit.record(
            decision_event(
                event,
                trace_id,
                caller,
                target.agent_id,
                action,
                requested,
                refused,
                started,
                outcome=outcome,
                kind=kind,
            ),
            durable=True,
        )
        return refused

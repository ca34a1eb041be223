"""The one delegation pipeline: look up -> decide -> mint -> call -> record.

Every way into an agent or an MCP server (the doors, the token endpoint, a
flow's step, a call made again or approved) reads its request into one
`Call` and goes through `Delegations.admit(call)` for the decision and the
minted token -- then, when the gateway makes the call itself, the refusal of
a call that needs human approval and the coordination rules -- and through
`Delegations.record()` for the audit record, so no path can skip a step or
record twice. A call that needs a human's approval is not refused for good:
it is held (`gateway.delegation.approvals`) and made, decided again, once an
admin approves.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar, overload

from adapters import spans
from adapters.trace_context import follow as follow_trace
from gateway.delegation.after_decision import AfterDecision
from gateway.delegation.audit import AuditLog
from gateway.delegation.audit_records import AuditEvent
from gateway.delegation.call import Call
from gateway.delegation.coordination import Coordination
from gateway.delegation.decision_records import (
    decision_event,
    decision_facts,
    refused_event,
    span_facts,
)
from gateway.delegation.permits import (
    ApprovalRequired,
    Caller,
    CoordinationDeferred,
    CoordinationRefused,
    DelegationDenied,
    Grant,
    Permit,
    RateLimited,
)
from gateway.delegation.rate_limits import RateLimits
from gateway.delegation.targets import TargetCache
from policies.api_keys import is_key_actor
from policies.delegation import DelegatedTokenMinter, MintedToken, MintRequest
from policies.limits import AppliedLimit
from policies.policy import (
    ActionKind,
    Decision,
    DelegationQuery,
    Target,
    authorize,
    may_use,
)
from policies.policy_file import PolicySource
from policies.tokens import Principal
from registry.cards import card_skills
from registry.models import AgentRecord
from registry.store import SqlAgentStore

# Re-exported: every door imports the pipeline's types from here.
__all__ = [
    "ApprovalRequired",
    "Call",
    "Caller",
    "CoordinationDeferred",
    "CoordinationRefused",
    "DelegationDenied",
    "Delegations",
    "Grant",
    "Permit",
    "RateLimited",
]
P = TypeVar("P", bound=Permit)


class Delegations(AfterDecision):
    def __init__(
        self,
        agents: SqlAgentStore,
        policy: PolicySource,
        minter: DelegatedTokenMinter,
        audit: AuditLog,
        *,
        max_depth: int,
        rate_limits: RateLimits | None = None,
        coordination: Coordination | None = None,
    ) -> None:
        self.agents = agents
        self.policy = policy
        self.minter = minter
        self.audit = audit
        self.max_depth = max_depth
        self.rate_limits = rate_limits or RateLimits(None)
        self.coordination = coordination
        self._targets = TargetCache(agents)
        # An API key's own rate limit, by the actor it names (`ApiKeys.rate_of`).
        self.key_limits: Callable[[str], tuple[AppliedLimit, ...]] = lambda _actor: ()
        # Why a key's call may not go on (`ApiKeys.unusable`): revoked, expired, gone.
        self.key_unusable: Callable[[str], Awaitable[str | None]] | None = None
        # An API key's budget (`ApiKeys.spend_on`): a call's price taken from
        # it, by (actor, target, action); None when paid, else why not.
        self.key_spend: Callable[[str, str, str | None], Awaitable[str | None]] | None = None

    async def target(self, agent_id: str) -> tuple[AgentRecord, dict[str, Any], Target]:
        """The agent's record, card and policy target (`TargetCache`)."""
        return await self._targets.get(agent_id)

    def visible(self, principal: Principal, agent_id: str, card: dict[str, Any]) -> bool:
        """Whether a user may use the agent at all: what listings show."""
        return may_use(
            self.policy.current,
            principal.scopes,
            Target.from_card(agent_id, card),
            max_depth=self.max_depth,
        )

    def usable_skills(
        self, caller: Caller, agent_id: str, card: Mapping[str, Any]
    ) -> list[dict[str, Any]]:
        """The skills of ``card`` that ``caller`` may delegate to, each decided
        as a message for it is (`decide`, kind "skill"): what every listing of
        skills shows (the extended card, `GET /agents`, `/mcp`'s agent tools).
        A skill that needs approval is usable: its call is held, not refused."""
        return [
            skill
            for skill, decision in self.skill_decisions(caller, agent_id, card)
            if decision.allowed
        ]

    def skill_decisions(
        self, caller: Caller, agent_id: str, card: Mapping[str, Any]
    ) -> list[tuple[dict[str, Any], Decision]]:
        """Each skill of ``card`` with its decision for ``caller`` (as a message for it)."""
        target = Target.from_card(agent_id, card)
        return [
            (skill, self.decide(caller, target, skill["id"], "skill"))
            for skill in card_skills(card)
        ]

    def strictest_skill(
        self, caller: Caller, target: Target, card: Mapping[str, Any]
    ) -> str | None:
        """What a message that names no skill, to an agent with several, is
        decided as. It may reach any of them (the agent picks), so it is
        decided as for the strictest skill this caller is held to more
        tightly than to the agent -- one it may not use, else one that needs
        approval -- and leaving the skill unsaid never gets round a skill's own
        rule. None when no skill is stricter than the agent."""
        agent = self.decide(caller, target, None, "skill")
        held: str | None = None
        for skill in card_skills(card):
            decision = self.decide(caller, target, skill["id"], "skill")
            if agent.allowed and not decision.allowed:
                return str(skill["id"])
            if held is None and decision.approval_required and not agent.approval_required:
                held = str(skill["id"])
        return held

    def decide(
        self,
        caller: Caller,
        target: Target,
        action: str | None = None,
        kind: ActionKind = "skill",
        requested: frozenset[str] | None = None,
    ) -> Decision:
        query = DelegationQuery(caller.scopes, caller.chain, target, action, kind, requested)
        return authorize(self.policy.current, query, max_depth=self.max_depth)

    @overload
    async def admit(self, call: Call[str]) -> Grant: ...

    @overload
    async def admit(self, call: Call[Target]) -> Permit: ...

    async def admit(self, call: Call[Any]) -> Permit:
        """Decide ``call`` and mint its token (a denial is audited here and
        raised as `DelegationDenied`); then, for a call the gateway sends
        itself (`Call.sends`), refuse a decision that wants a human as
        `ApprovalRequired` unless ``call.approved`` (whoever catches it holds
        the request, `gateway.delegation.approvals`), and apply the
        coordination rules to its ``inputs`` (held for approval, it is not
        made yet: they apply once it is). A call to a registered agent gets a
        `Grant` (its record and card with the permit)."""
        started = time.perf_counter()
        found: tuple[AgentRecord, dict[str, Any]] | None = None
        if isinstance(call.target, Target):
            target, resource = call.target, str(call.audience)
        else:
            record, card, target = await self.target(call.target)
            found, resource = (record, card), call.audience or record.resource
        action = call.action
        if call.message and found is not None and (action is None or call.strictest):
            action = self.strictest_skill(call.caller, target, found[1]) or action
        permit = await self._permit(
            call.caller,
            target,
            resource,
            call.event,
            call.trace_id,
            action,
            call.kind,
            call.requested,
            started,
        )
        if found is not None:
            permit = Grant(**vars(permit), agent=found[0], card=found[1])
        if not call.sends:
            return permit
        self._refuse_if_approval_needed(permit, call.approved)
        return await self._coordinate(permit, call.inputs, call.event)

    async def _permit(
        self,
        caller: Caller,
        target: Target,
        resource: str,
        event: str,
        trace_id: str,
        action: str | None,
        kind: ActionKind,
        requested: frozenset[str] | None,
        started: float,
    ) -> Permit:
        # Every upstream call made for a delegation is made with a token minted
        # here, in the task that makes the call or starts the task that does
        # (a request's, a run's, an approved call's). From here on that task's
        # upstream requests -- and spans -- carry this trace id, the one its
        # audit records carry: the caller's traceparent when `begin` took it
        # from this very request, else the stored trace of an approved or
        # resumed call (`adapters.trace_context`, `adapters.spans`).
        follow_trace(trace_id)
        with spans.span("switchboard.decide") as span:
            decision = self.decide(caller, target, action, kind, requested)
            if span is not None:  # tracing on
                facts = span_facts(caller, target.agent_id, action, event)
                span.set_attributes({**facts, **decision_facts(decision)})
                spans.bind_delegation(facts)
        if not decision.allowed:
            said = (event, trace_id, caller, target.agent_id, action, requested, decision)
            denial = decision_event(*said, started, kind=kind)
            # Written before the caller hears the refusal.
            await self.audit.record(denial, durable=True)
            raise DelegationDenied(target.agent_id, decision)
        keyed = is_key_actor(caller.client_id)
        if keyed:  # an API key's call: usable still (`ApiKeys.unusable`)?
            await self._key_usable(
                caller, target, action, decision, event, trace_id, requested, started, kind
            )
        # Counted once allowed, before a token exists: the policy's limits, and
        # an API key's own rate (`policies.api_keys`).
        if self.policy.current.limits or keyed:
            await self._count(
                caller, target, action, decision, event, trace_id, requested, started, kind
            )
        if keyed:  # its price taken from its budget
            await self._key_paid(
                caller, target, action, decision, event, trace_id, requested, started, kind
            )
        token = await self._mint(caller, decision, resource)
        made = (target.agent_id, decision, token, caller, action, requested, trace_id, started)
        return Permit(*made, kind=kind)

    async def _mint(self, caller: Caller, decision: Decision, resource: str) -> MintedToken:
        """The token of the call: the caller's user, their chain, the granted
        scopes, audience ``resource``."""
        with spans.span("switchboard.mint") as span:
            if span is not None:
                span.set_attribute("switchboard.audience", resource)
            return await self.minter.mint(
                MintRequest(
                    subject=caller.subject,
                    subject_issuer=caller.issuer,
                    actors=caller.actors,
                    audience=resource,
                    scopes=decision.granted,
                    client_id=caller.client_id,
                    not_after=caller.not_after,
                    txn=caller.txn,
                )
            )

    async def record(
        self,
        permit: Permit,
        event: str,
        outcome: str,
        detail: str | None = None,
        *,
        ends_call: bool = True,
    ) -> None:
        """Audit a call's outcome; ``ends_call`` False for a step that is not
        its end (a gateway-run task accepted: the run records the end), so
        the coordination rules see the end only."""
        audit_event = decision_event(
            event,
            permit.trace_id,
            permit.caller,
            permit.target_id,
            permit.action,
            permit.requested,
            permit.decision,
            permit.started,
            outcome=outcome,
            detail=detail,
            kind=permit.kind,
        )
        audit_event.token_id = permit.token.token_id
        # Written before the outcome is acknowledged (the caller answered, a
        # step's or task's outcome stored): a crash after that keeps it.
        await self.audit.record(audit_event, durable=True)
        if ends_call and permit.coordinated is not None and self.coordination is not None:
            await self.coordination.finished(permit.coordinated, outcome == "ok")

    async def record_event(self, event: AuditEvent, *, durable: bool = False) -> None:
        """Audit what is not a delegated call's outcome: an outage answered, a
        flow's own events, a registration refused. The audit writer is the
        core's: doors record through here, never through it. ``durable``:
        written before this returns (an outcome about to be acknowledged)."""
        await self.audit.record(event, durable=durable)

    async def refused(
        self,
        caller: Caller,
        agent_id: str,
        *,
        event: str,
        trace_id: str,
        reason: str,
        outcome: str = "invalid_request",
    ) -> None:
        """Audit a request refused before it could be decided
        (`gateway.delegation.decision_records.refused_event`)."""
        refusal = refused_event(caller, agent_id, event, trace_id, reason, outcome)
        await self.audit.record(refusal, durable=True)

    @staticmethod
    def _refuse_if_approval_needed(permit: Permit, approved: bool) -> None:
        # The call waits for a human: the caller turns this into a pending
        # approval (`gateway.delegation.approvals`). ``approved`` is set only when an
        # admin's approval of this very request is being carried out.
        if permit.decision.approval_required and not approved:
            raise ApprovalRequired(permit)

"""The coordination rules' part of one delegation decision
(`Delegations._coordinate`): read the call's entity keys, ask the rules, and
turn what they say into the decision's outcome -- the permit with what it
took, a refusal (audited), or a deferral."""

from __future__ import annotations

from collections.abc import Awaitable, Sequence
from dataclasses import replace
from typing import Any, Protocol, TypeVar

from gateway.delegation.coordination import Coordination, CoordinationBlocked
from gateway.delegation.permits import (
    CoordinationDeferred,
    CoordinationRefused,
    Deferral,
    Permit,
)
from policies.coordination import EntityKeyInvalid, EntityKeyMissing, entity_keys, plan
from policies.coordination_rules import CoordinationPolicy
from policies.policy import Decision

P = TypeVar("P", bound=Permit)


class Refuse(Protocol):
    """Audits the refusal of the call; the refused decision, as told."""

    def __call__(self, reason: str, *, outcome: str) -> Awaitable[Decision]: ...


async def coordinate(
    rules: CoordinationPolicy,
    coordination: Coordination,
    permit: P,
    inputs: Sequence[Any],
    refuse: Refuse,
) -> P:
    target, action = permit.target_id, permit.action
    try:
        keys = entity_keys(rules, target, action, inputs)
        asked = plan(rules, target, action, keys)
        if not asked:
            return permit
        admitted = await coordination.take(asked, permit.caller, target, action, permit.trace_id)
    except (EntityKeyMissing, EntityKeyInvalid) as exc:
        refused = await refuse(str(exc), outcome="invalid_request")
        raise CoordinationRefused(target, refused, None, None) from None
    except CoordinationBlocked as exc:
        blocked = exc.blocked
        if blocked.rule.mode == "defer":
            # Kept, not refused: whoever catches it holds the request
            # (`gateway.delegation.deferrals`), and audits it as deferred.
            rank, wait = rules.priority(blocked.rule.entity, target, action)
            said = replace(permit.decision, reasons=(blocked.reason(),))
            raise CoordinationDeferred(
                replace(permit, decision=said),
                Deferral(
                    blocked.rule.rule,
                    blocked.rule.kind,
                    blocked.rule.entity,
                    blocked.rule.key,
                    blocked.reason(),
                    rank,
                    wait,
                ),
            ) from None
        refused = await refuse(blocked.reason(), outcome="coordination")
        raise CoordinationRefused(target, refused, blocked.retry_after, blocked.rule.rule) from None
    return replace(permit, coordinated=admitted)

"""Who is calling, and what the decision gives them or refuses: the types
every door and `gateway.delegation.pipeline` pass around."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from policies.coordination import Plan
from policies.delegation import MintedToken, actors_of
from policies.policy import ActionKind, Decision
from policies.tokens import Principal, first_actor
from registry.models import AgentRecord

# A ``txn`` this gateway mints: "<run id>:<step record id>" (`gateway.flows`).
MAX_TXN = 160


def txn_of(claims: Mapping[str, Any]) -> str | None:
    """The ``txn`` claim of a token this gateway minted, if it is one of ours."""
    txn = claims.get("txn")
    return txn if isinstance(txn, str) and 0 < len(txn) <= MAX_TXN else None


@dataclass(frozen=True)
class Caller:
    """On whose behalf, and through whom, a delegation is asked for."""

    subject: str
    issuer: str
    scopes: frozenset[str]
    # Oldest first; the last one is the actor calling now. actors[0] is the
    # client the user's request came through; actors[1:] are agents.
    actors: tuple[str, ...]
    client_id: str
    # A derived token never outlives its source: when the source token stops
    # being accepted (`policies.tokens.usable_until`), or a grant ends.
    not_after: float | None = None
    # The work this call is part of (a flow run's step: `gateway.flows.calls`),
    # minted into the token as ``txn`` and carried by every exchange, so a call
    # an agent makes onwards -- held for approval, say -- is known to belong to
    # it (`gateway.flows.deep_approvals`). Only from tokens this gateway minted.
    txn: str | None = None

    def stored(self) -> dict[str, Any]:
        """As JSON, to act for this caller later (`from_stored`); no token in it."""
        # Field by field: `asdict` deep-copies, and this is written with every
        # task a caller's call records.
        return {
            "subject": self.subject,
            "issuer": self.issuer,
            "scopes": sorted(self.scopes),
            "actors": list(self.actors),
            "client_id": self.client_id,
            "not_after": self.not_after,
            "txn": self.txn,
        }

    @classmethod
    def from_stored(cls, data: Mapping[str, Any]) -> Caller:
        return cls(
            subject=str(data["subject"]),
            issuer=str(data["issuer"]),
            scopes=frozenset(data["scopes"]),
            actors=tuple(data["actors"]),
            client_id=str(data["client_id"]),
            not_after=data.get("not_after"),
            txn=data.get("txn"),
        )

    @classmethod
    def user(cls, principal: Principal) -> Caller:
        """A user's own request, arriving with the user's (or their app's) token."""
        return cls(
            subject=principal.subject,
            issuer=principal.issuer,
            scopes=principal.scopes,
            actors=(first_actor(principal),),
            client_id=principal.client_id or principal.subject,
            not_after=principal.usable_until or principal.expires_at or None,
        )

    @classmethod
    def delegated(cls, principal: Principal) -> Caller:
        """An agent calling onwards with a token this gateway minted for the
        call by token exchange: the user's, with the actor chain in ``act``."""
        actors = actors_of(principal.claims)
        return cls(
            subject=principal.subject,
            issuer=principal.issuer,
            scopes=principal.scopes,
            actors=actors,
            client_id=principal.client_id or actors[-1],
            not_after=principal.usable_until or principal.expires_at or None,
            txn=txn_of(principal.claims),
        )

    @property
    def chain(self) -> tuple[str, ...]:
        """The agents that have acted so far (the policy's view of the chain)."""
        return self.actors[1:]


@dataclass(frozen=True)
class Admitted:
    """What the coordination rules gave one admitted call
    (`gateway.delegation.coordination`), and what its end must do."""

    holder: str
    plan: Plan
    caller: Caller
    agent: str
    action: str | None
    trace_id: str


@dataclass(frozen=True)
class Permit:
    """An allowed delegation to one target, with the token minted for it."""

    target_id: str
    decision: Decision
    token: MintedToken
    caller: Caller
    action: str | None
    requested: frozenset[str] | None
    trace_id: str
    started: float
    # What the policy's coordination rules gave this call (leases, budget
    # units), given back -- and cooldowns started -- when its outcome is
    # recorded (`Delegations.record`). None: no rule applies to it.
    coordinated: Admitted | None = field(default=None, kw_only=True)
    # What the action is (the decision's kind), for its audit records.
    kind: ActionKind = field(default="skill", kw_only=True)


@dataclass(frozen=True)
class Grant(Permit):
    """A permit for a registered A2A agent, with its record and card."""

    agent: AgentRecord
    card: dict[str, Any]


class DelegationDenied(Exception):
    def __init__(self, agent_id: str, decision: Decision) -> None:
        super().__init__("; ".join(decision.reasons))
        self.agent_id = agent_id
        self.decision = decision


class RateLimited(DelegationDenied):
    """Allowed by the policy, but one of its rate limits is reached: the caller
    may come back in ``retry_after`` seconds."""

    def __init__(self, agent_id: str, decision: Decision, retry_after: int) -> None:
        super().__init__(agent_id, decision)
        self.retry_after = retry_after


class CoordinationRefused(DelegationDenied):
    """Allowed by the policy, but one of its coordination rules holds the call
    back (``retry_after``: when it may come back; None for a call whose
    input does not name the entity the rules need, which no waiting fixes)."""

    def __init__(
        self, agent_id: str, decision: Decision, retry_after: int | None, rule: str | None
    ) -> None:
        super().__init__(agent_id, decision)
        self.retry_after = retry_after
        self.rule = rule


class ApprovalRequired(DelegationDenied):
    """The policy wants a human to approve this call first. ``permit`` is what
    the call would run with: who asks, the decision, the trace (its token is
    never stored; an approved call decides and mints again)."""

    def __init__(self, permit: Permit) -> None:
        super().__init__(permit.target_id, permit.decision)
        self.permit = permit


@dataclass(frozen=True)
class Deferral:
    """Why a call waits, in the words the caller and the admin see, and what
    releases it (`gateway.delegation.deferrals`)."""

    rule: str
    kind: str
    entity: str
    key: str
    reason: str
    rank: int  # among the entity's deferred calls: 0 goes first
    wait_seconds: float | None  # a lower rank gives up after this; None: until released


class CoordinationDeferred(ApprovalRequired):
    """A coordination rule in `mode: defer` holds the call back: it is kept,
    as a request for approval is, and made once what held it back has ended
    -- by the gateway, not an admin."""

    def __init__(self, permit: Permit, deferral: Deferral) -> None:
        super().__init__(permit)
        self.deferral = deferral

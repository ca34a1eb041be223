"""`/policies` (admin): the policy in force and `explain`, which runs the very
decision a delegation would, without calling anything or minting a token."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field

from gateway.api.state import state_of
from gateway.delegation.coordination import iso
from gateway.delegation.pipeline import Caller, Delegations
from gateway.http.auth import AdminPrincipal
from gateway.http.problems import Problem
from policies.coordination import EntityKeyInvalid, EntityKeyMissing, entity_keys, plan
from policies.policy import ActionKind, Target
from policies.scopes import ScopeSyntaxError, parse_scopes
from registry.models import AGENT_ID_PATTERN
from registry.store import AgentNotFound

router = APIRouter(prefix="/policies", tags=["policies"])


class ExplainRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    user_scopes: list[str] | str = Field(description="the user's scopes (list or space-separated)")
    chain: list[str] = Field(
        default_factory=list,
        max_length=64,
        description="agents that have already acted, oldest first (empty: the user's own call)",
    )
    target: str = Field(pattern=AGENT_ID_PATTERN)
    action: str | None = Field(
        default=None,
        max_length=2048,
        description="skill id, tool name, resource URI (or URI template) or prompt name",
    )
    kind: ActionKind = "skill"
    requested_scopes: list[str] | str | None = None
    subject: str = "explain"
    input: dict[str, Any] | None = Field(
        default=None,
        description="what the call would hand the agent (a message's data, a tool's "
        "arguments): the coordination rules read their entities' keys from it",
    )


@router.get("", summary="The policy in force")
async def current_policy(request: Request, _: AdminPrincipal) -> dict[str, Any]:
    """The policy in force, as parsed and as the text it was read from:
    ``source`` is ``file`` (the policy file), ``stored`` (a version saved with
    `PUT /policies`, ``version`` its id) or ``default`` (the built-in one);
    ``digest`` (SHA-256 of ``document``) is what a save names as its base."""
    source = state_of(request).delegations.policy
    document = source.document
    return {
        "source": document.source,
        "file": str(source.path) if source.path else None,
        "version": document.version,
        "digest": document.digest,
        "document": document.text,
        "last_reload_error": source.last_error,
        "policy": source.current.model_dump(mode="json", exclude_none=True),
    }


@router.post("/explain", summary="What would happen for this delegation, and why")
async def explain(request: Request, body: ExplainRequest, _admin: AdminPrincipal) -> dict[str, Any]:
    state = state_of(request)
    delegations = state.delegations
    try:
        *_, target = await delegations.target(body.target)
    except AgentNotFound:
        # MCP servers are targets of the same decision (kinds "tool", "resource", "prompt").
        if await state.mcp.store.config(body.target) is None:
            raise
        target = Target(body.target)
    caller = Caller(
        subject=body.subject,
        issuer="explain",
        scopes=_scopes(body.user_scopes),
        actors=("client", *body.chain),
        client_id="client",
    )
    requested = _scopes(body.requested_scopes) if body.requested_scopes is not None else None
    decision = delegations.decide(caller, target, body.action, body.kind, requested)
    # The rate limits that would count this call, and what is left of each for
    # this subject (counting nothing).
    limits = await delegations.rate_limits.state(
        delegations.limits_for(caller, body.target, body.action)
    )
    return {
        **decision.as_dict(),
        "coordination": await _coordination(delegations, body),
        "limits": [
            {
                "name": s.limit.name,
                "rate": s.limit.rate,
                "per": list(s.limit.key[1:]),
                "remaining": s.remaining,
                "resets_in_seconds": s.resets_in,
            }
            for s in limits
        ],
        "target": body.target,
        "chain": body.chain,
        "action": body.action,
    }


def _scopes(value: list[str] | str) -> frozenset[str]:
    text = value if isinstance(value, str) else " ".join(value)
    try:
        return parse_scopes(text)
    except ScopeSyntaxError as exc:
        raise Problem(422, "invalid-scope", "Invalid scope", str(exc)) from None


async def _coordination(delegations: Delegations, body: ExplainRequest) -> dict[str, Any]:
    """The coordination rules that would apply to the call, and what holds it
    back now, counting and taking nothing (`policies.coordination`)."""
    rules = delegations.policy.current.coordination
    if not rules or body.input is None:
        return {"keys": {}, "rules": [], "blocked_by": []}
    try:
        keys = entity_keys(rules, body.target, body.action, [body.input])
    except (EntityKeyMissing, EntityKeyInvalid) as exc:
        return {"keys": {}, "rules": [], "blocked_by": [], "error": str(exc)}
    asked = plan(rules, body.target, body.action, keys)
    blocked = await delegations.coordination.state(asked) if delegations.coordination else []
    return {
        "keys": keys,
        "rules": [
            {"rule": k.rule, "kind": k.kind, "entity": k.entity, "key": k.key, "role": role}
            for role, found in (
                ("blocked_by", asked.blocked_by),
                ("takes_lease", asked.leases),
                ("counts_in_budget", asked.budgets),
                ("opens", asked.opens),
                ("closes", asked.closes),
                ("starts_cooldown", asked.cools),
            )
            for k in found
        ],
        "blocked_by": [
            {
                "rule": b.rule.rule,
                "kind": b.rule.kind,
                "entity": b.rule.entity,
                "key": b.rule.key,
                "until": iso(b.until),
                "reason": b.reason(),
            }
            for b in blocked
        ],
    }

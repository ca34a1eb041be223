"""`/coordination` (admin): what the policy's coordination rules keep in force
-- open holds, running cooldowns, calls holding an entity, budgets' counts --
and ending one by hand (a hold left open by an agent that never resolves).

A key given here is read as a call's is (`policies.entity_keys`): any spelling
of a customer lists and releases what is kept for that customer."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request

from gateway.api.state import state_of
from gateway.http.auth import AdminPrincipal
from gateway.http.problems import Problem
from policies.coordination_rules import CoordinationPolicy

router = APIRouter(prefix="/coordination", tags=["coordination"])
NAME = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"


def _entity(value: str | None) -> tuple[str | None, str | None]:
    """`customer` or `customer:C-1042`: the entity, and its key if given."""
    if value is None:
        return None, None
    entity, _, key = value.partition(":")
    return entity, key or None


@router.get("/holds", summary="Holds, cooldowns, leases and budget counts in force")
async def list_holds(
    request: Request,
    _admin: AdminPrincipal,
    entity: Annotated[
        str | None,
        Query(
            max_length=64 + 1 + 256,
            pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}(:.{1,256})?$",
            description="an entity (`customer`) or one of its keys (`customer:C-1042`)",
        ),
    ] = None,
    rule: Annotated[str | None, Query(pattern=NAME)] = None,
) -> dict[str, Any]:
    delegations = state_of(request).delegations
    coordination = delegations.coordination
    assert coordination is not None
    wanted, key = _entity(entity)
    if wanted is not None and key is not None:
        key = delegations.policy.current.coordination.canonical(wanted, key)
    rows = await coordination.list(wanted, key)
    items = [row.as_dict() for row in rows if rule is None or row.rule == rule]
    return {"items": items}


@router.delete(
    "/holds/{rule}/{key:path}",  # a key may hold a slash; a rule's name never does
    summary="End what a rule keeps for one entity (a hold, a cooldown, a lease, a count)",
)
async def release_hold(
    request: Request,
    rule: Annotated[str, Path(pattern=NAME)],
    key: Annotated[str, Path(min_length=1, max_length=256)],
    admin: AdminPrincipal,
) -> dict[str, Any]:
    delegations = state_of(request).delegations
    coordination = delegations.coordination
    assert coordination is not None
    for meant in _spellings(delegations.policy.current.coordination, rule, key):
        if released := await coordination.release(rule, meant, admin.subject):
            return {"rule": rule, "key": meant, "released": released}
    raise Problem(404, "not-found", "Nothing in force", f"rule {rule} keeps nothing for {key}")


def _spellings(rules: CoordinationPolicy, rule: str, key: str) -> list[str]:
    """The keys ``key`` may mean, as ``rule``'s entity compares them: the key
    itself, then, for ``customer:C-1`` (how listings print a key), ``C-1``. A
    rule no longer in the policy (what it kept still runs out) reads keys the
    default way."""
    entity = next((r.entity for r in rules.rules if r.name == rule), "")
    keys = [rules.canonical(entity, key)]
    if entity and key.startswith(f"{entity}:"):
        keys.append(rules.canonical(entity, key.removeprefix(f"{entity}:")))
    return keys

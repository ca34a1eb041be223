"""The agent registry API (`/agents`). Writes need `switchboard:admin`.

Reads need a valid token, and show a user only the agents they may delegate
to -- decided by `policies.policy.may_use`, the same function every
delegation runs -- so nobody browses what they cannot use. An agent a user
may not use answers 404, exactly like one that does not exist. A record's
`skills` (and `skill_contracts`), and the skills of its card at any revision,
are those the user may call, each decided as a message for it is
(`Delegations.usable_skills`); a search by skill, tag or
media type matches only those, and free text (`q`) only what the user is
shown (the agent's name, description and provider, and those skills). Admins
see all.

An agent's skills are tools on `/mcp` (``{agent}__{skill}``): a registration
or refresh whose id is reserved, or whose skills' names a stored MCP tool
holds, is refused with 409 (`mcp-name-reserved`, `mcp-name-conflict`) and
audited (event ``mcp.names``).
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Body, Query, Request, Response, status

from gateway.api.mcp_sets import forget_in_sets
from gateway.api.state import audited, state_of
from gateway.delegation.pipeline import Caller
from gateway.delegation.resilience import breaker_info
from gateway.federation.federated_tools import audit_name_refusal
from gateway.http.auth import AdminPrincipal, CurrentPrincipal
from policies.scopes import ADMIN_SCOPE
from policies.tokens import Principal
from registry.cards import card_skills
from registry.mcp_names import NameConflict
from registry.models import (
    AgentPage,
    AgentQuery,
    AgentRecord,
    AgentRegistration,
    CardVersion,
    HealthEvent,
    RefreshRequest,
)
from registry.store import AgentNotFound, encode_cursor, skill_filters_match, words_match

router = APIRouter(prefix="/agents", tags=["registry"])
T = TypeVar("T")


@router.post(
    "", status_code=status.HTTP_201_CREATED, summary="Register an agent by card URL or inline card"
)
async def register_agent(
    request: Request, response: Response, registration: AgentRegistration, admin: AdminPrincipal
) -> AgentRecord:
    registry = state_of(request).registry
    record = await _names_audited(request, admin, registration.id, registry.register(registration))
    state_of(request).registry.changed()
    await audited(request, admin, "agent.registered", record.id)
    response.headers["Location"] = f"/agents/{record.id}"
    return _with_breaker(request, record)


@router.get("", summary="Search the agents the caller may use")
async def list_agents(
    request: Request, principal: CurrentPrincipal, query: Annotated[AgentQuery, Query()]
) -> AgentPage:
    state = state_of(request)
    if principal.has_scope(ADMIN_SCOPE):
        found = await state.agents.search(query)
        return found.model_copy(update={"items": [_with_breaker(request, r) for r in found.items]})
    # Filter page by page until the caller's page is full or the registry ends.
    items: list[AgentRecord] = []
    page_query = query
    while True:
        page, cards = await state.agents.search_with_cards(page_query)
        for record in page.items:
            card = cards[record.id]
            if not state.delegations.visible(principal, record.id, card):
                continue
            skills = _usable(request, principal, record.id, card)
            # The store matched every filter and word on the whole card: again
            # on what this caller is shown of it.
            if skill_filters_match(query, card, skills) and words_match(query.q, card, skills):
                items.append(_with_breaker(request, _showing(record, skills)))
                if len(items) == query.limit:
                    return AgentPage(items=items, next_cursor=encode_cursor(record.id))
        if page.next_cursor is None:
            return AgentPage(items=items, next_cursor=None)
        page_query = page_query.model_copy(update={"cursor": page.next_cursor})


async def _visible(request: Request, principal: Principal, agent_id: str) -> None:
    """404 unless the agent exists and the caller may use it."""
    if not principal.has_scope(ADMIN_SCOPE):  # admins need no card read
        _check_visible(request, principal, agent_id, await state_of(request).agents.card(agent_id))


def _check_visible(
    request: Request, principal: Principal, agent_id: str, card: dict[str, Any] | None
) -> None:
    if card is None or not (
        principal.has_scope(ADMIN_SCOPE)
        or state_of(request).delegations.visible(principal, agent_id, card)
    ):
        raise AgentNotFound(agent_id)


@router.get("/{agent_id}", summary="One agent's record")
async def get_agent(request: Request, agent_id: str, principal: CurrentPrincipal) -> AgentRecord:
    state = state_of(request)
    found = await state.agents.get_with_card(agent_id)
    _check_visible(request, principal, agent_id, found[1] if found else None)
    assert found is not None
    record, card = found
    if not principal.has_scope(ADMIN_SCOPE):
        record = _showing(record, _usable(request, principal, agent_id, card))
    return _with_breaker(request, record)


def _usable(
    request: Request, principal: Principal, agent_id: str, card: dict[str, Any]
) -> list[dict[str, Any]]:
    caller = Caller.user(principal)
    return state_of(request).delegations.usable_skills(caller, agent_id, card)


def _showing(record: AgentRecord, skills: list[dict[str, Any]]) -> AgentRecord:
    """The record with only ``skills`` (and their contracts)."""
    ids = {s["id"] for s in skills}
    return record.model_copy(
        update={
            "skills": [s for s in record.skills if s.id in ids],
            "skill_contracts": {k: v for k, v in record.skill_contracts.items() if k in ids},
        }
    )


def _with_breaker(request: Request, record: AgentRecord) -> AgentRecord:
    """The record with its circuit breaker, as this replica sees it (docs/resilience.md)."""
    breakers = state_of(request).breakers
    return record.model_copy(update={"breaker": breaker_info(breakers.state(record.id))})


@router.get("/{agent_id}/card", summary="The agent's card, normalised to A2A 1.0")
async def get_card(
    request: Request,
    agent_id: str,
    principal: CurrentPrincipal,
    # A revision is an INTEGER column (int32 on PostgreSQL): past it, no card.
    revision: Annotated[int | None, Query(ge=1, le=2**31 - 1)] = None,
    original: Annotated[bool, Query(description="the card exactly as registered")] = False,
) -> dict[str, Any]:
    agents = state_of(request).agents
    card: dict[str, Any] | None
    if principal.has_scope(ADMIN_SCOPE):
        card = await agents.card(agent_id, revision, original=original)
    else:
        current = await agents.card(agent_id)
        _check_visible(request, principal, agent_id, current)
        assert current is not None
        if revision is None and not original:
            card = current
        else:
            card = await agents.card(agent_id, revision, original=original)
        if card is not None:
            # Only the skills the user may call, as every other listing: decided
            # on the current card (the one a call is decided on), applied to
            # whichever version is asked for -- an old revision or the card as
            # registered must not show what the current one hides.
            usable = {s["id"] for s in _usable(request, principal, agent_id, current)}
            card = {**card, "skills": [s for s in card_skills(card) if s["id"] in usable]}
    if card is None:
        raise AgentNotFound(agent_id if revision is None else f"{agent_id} revision {revision}")
    return card


@router.get("/{agent_id}/versions", summary="Card history, newest first")
async def list_versions(
    request: Request, agent_id: str, principal: CurrentPrincipal
) -> list[CardVersion]:
    await _visible(request, principal, agent_id)
    versions = await state_of(request).agents.versions(agent_id)
    if versions is None:
        raise AgentNotFound(agent_id)
    return versions


@router.get("/{agent_id}/health", summary="The agent's changes of health, newest first")
async def health_history(
    request: Request,
    agent_id: str,
    principal: CurrentPrincipal,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> list[HealthEvent]:
    await _visible(request, principal, agent_id)
    agents = state_of(request).agents
    if principal.has_scope(ADMIN_SCOPE) and await agents.get(agent_id) is None:
        raise AgentNotFound(agent_id)  # `_visible` reads no card for admins
    return await agents.health_history(agent_id, limit)


@router.delete("/{agent_id}", status_code=status.HTTP_204_NO_CONTENT, summary="Remove an agent")
async def delete_agent(request: Request, agent_id: str, admin: AdminPrincipal) -> Response:
    if not await state_of(request).agents.delete(agent_id):
        raise AgentNotFound(agent_id)
    await audited(request, admin, "agent.removed", agent_id)
    # Users' connected accounts at it (`user_oauth`): forgotten and revoked.
    await state_of(request).connections.forget_upstream(agent_id)
    await forget_in_sets(request, agent_id, admin)
    state_of(request).registry.changed()
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/{agent_id}/refresh", summary="Re-fetch (or replace) the card; a change makes a new revision"
)
async def refresh_agent(
    request: Request,
    agent_id: str,
    admin: AdminPrincipal,
    body: Annotated[RefreshRequest | None, Body()] = None,
) -> dict[str, Any]:
    refresh = state_of(request).registry.refresh(agent_id, body.card if body else None)
    record, changed = await _names_audited(request, admin, agent_id, refresh)
    if changed:
        state_of(request).registry.changed()
        await audited(request, admin, "agent.refreshed", agent_id)
    return {"changed": changed, "agent": _with_breaker(request, record).model_dump(mode="json")}


async def _names_audited(
    request: Request, admin: Principal, agent_id: str | None, work: Awaitable[T]
) -> T:
    """``work``, with a refusal of the agent's names on /mcp (its id, its
    skills' tool names: `registry.mcp_names`) audited as ``mcp.names``."""
    try:
        return await work
    except NameConflict as refused:
        await audit_name_refusal(state_of(request).delegations, admin, agent_id, str(refused))
        raise

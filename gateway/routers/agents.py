"""The agent registry API (`/agents`). Writes need `switchboard:admin`; reads any valid token."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Query, Request, Response, status

from gateway.auth import AdminPrincipal, CurrentPrincipal
from gateway.state import state_of
from registry.models import (
    AgentPage,
    AgentQuery,
    AgentRecord,
    AgentRegistration,
    CardVersion,
    RefreshRequest,
)
from registry.store import AgentNotFound

router = APIRouter(prefix="/agents", tags=["registry"])


@router.post(
    "", status_code=status.HTTP_201_CREATED, summary="Register an agent by card URL or inline card"
)
async def register_agent(
    request: Request, response: Response, registration: AgentRegistration, _: AdminPrincipal
) -> AgentRecord:
    record = await state_of(request).registry.register(registration)
    response.headers["Location"] = f"/agents/{record.id}"
    return record


@router.get("", summary="Search registered agents")
async def list_agents(
    request: Request, _: CurrentPrincipal, query: Annotated[AgentQuery, Query()]
) -> AgentPage:
    return await state_of(request).agents.search(query)


@router.get("/{agent_id}", summary="One agent's record")
async def get_agent(request: Request, agent_id: str, _: CurrentPrincipal) -> AgentRecord:
    record = await state_of(request).agents.get(agent_id)
    if record is None:
        raise AgentNotFound(agent_id)
    return record


@router.get("/{agent_id}/card", summary="The agent's card, normalised to A2A 1.0")
async def get_card(
    request: Request,
    agent_id: str,
    _: CurrentPrincipal,
    revision: Annotated[int | None, Query(ge=1)] = None,
    original: Annotated[bool, Query(description="the card exactly as registered")] = False,
) -> dict[str, Any]:
    card = await state_of(request).agents.card(agent_id, revision, original=original)
    if card is None:
        raise AgentNotFound(agent_id if revision is None else f"{agent_id} revision {revision}")
    return card


@router.get("/{agent_id}/versions", summary="Card history, newest first")
async def list_versions(request: Request, agent_id: str, _: CurrentPrincipal) -> list[CardVersion]:
    versions = await state_of(request).agents.versions(agent_id)
    if versions is None:
        raise AgentNotFound(agent_id)
    return versions


@router.delete("/{agent_id}", status_code=status.HTTP_204_NO_CONTENT, summary="Remove an agent")
async def delete_agent(request: Request, agent_id: str, _: AdminPrincipal) -> Response:
    if not await state_of(request).agents.delete(agent_id):
        raise AgentNotFound(agent_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/{agent_id}/refresh", summary="Re-fetch (or replace) the card; a change makes a new revision"
)
async def refresh_agent(
    request: Request,
    agent_id: str,
    _: AdminPrincipal,
    body: Annotated[RefreshRequest | None, Body()] = None,
) -> dict[str, Any]:
    record, changed = await state_of(request).registry.refresh(
        agent_id, body.card if body else None
    )
    return {"changed": changed, "agent": record.model_dump(mode="json")}

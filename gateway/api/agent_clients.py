"""`/agents/{id}/oauth-client`: a client registered out of band at the
authorization server of an A2A agent whose users connect their own accounts
(`gateway.agents.oauth_clients`). Admins only; the secret is never shown.

A gateway-run vendor agent's client is part of its registration
(`POST /vendor-agents`, ``user_oauth``), not set here.
"""

from __future__ import annotations

from fastapi import APIRouter, Request, Response, status

from gateway.agents.oauth_clients import OAuthClientInfo, OAuthClientSpec
from gateway.api.state import audited, state_of
from gateway.http.auth import AdminPrincipal
from gateway.http.problems import Problem
from registry.store import AgentNotFound
from registry.vendor_cards import gateway_run_kind

router = APIRouter(prefix="/agents", tags=["connections"])


async def _a2a_agent(request: Request, agent_id: str) -> None:
    found = await state_of(request).agents.get_with_card(agent_id)
    if found is None:
        raise AgentNotFound(agent_id)
    if gateway_run_kind(found[1]) is not None:
        raise Problem(
            409,
            "gateway-run-agent",
            "Not an A2A agent",
            f"agent {agent_id} is run by the gateway: its client is part of its registration",
        )


@router.put(
    "/{agent_id}/oauth-client",
    summary="Set the client registered out of band at an A2A agent's authorization server",
)
async def put_oauth_client(
    request: Request, agent_id: str, spec: OAuthClientSpec, principal: AdminPrincipal
) -> OAuthClientInfo:
    await _a2a_agent(request, agent_id)
    info = await state_of(request).agent_clients.put(agent_id, spec)
    await audited(request, principal, "agent.oauth_client_set", agent_id)
    return info


@router.get(
    "/{agent_id}/oauth-client",
    summary="The client registered out of band for an A2A agent (never its secret)",
)
async def get_oauth_client(request: Request, agent_id: str, _: AdminPrincipal) -> OAuthClientInfo:
    await _a2a_agent(request, agent_id)
    info = await state_of(request).agent_clients.info(agent_id)
    if info is None:
        raise Problem(404, "not-found", "No client set", f"agent {agent_id} has none")
    return info


@router.delete(
    "/{agent_id}/oauth-client",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Forget an A2A agent's client registered out of band",
)
async def delete_oauth_client(
    request: Request, agent_id: str, principal: AdminPrincipal
) -> Response:
    await _a2a_agent(request, agent_id)
    if not await state_of(request).agent_clients.delete(agent_id):
        raise Problem(404, "not-found", "No client set", f"agent {agent_id} has none")
    await audited(request, principal, "agent.oauth_client_removed", agent_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)

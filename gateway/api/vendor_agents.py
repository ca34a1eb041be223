"""Gateway-run agents (`/vendor-agents`): OpenAI-compatible endpoints and REST webhooks.

Registering and removing need `switchboard:admin`. A registered agent is an
agent like any other: listed and searched at `/agents` (with the card the
gateway wrote), served at `/a2a/{id}`, decided by the same policy. Reading
its configuration here needs admin too; no answer ever carries the API key.
"""

from __future__ import annotations

from fastapi import APIRouter, Request, Response, status

from gateway.api.mcp_sets import forget_in_sets
from gateway.api.state import audited, state_of
from gateway.delegation.vendor_agents import VendorRegistrationRefused
from gateway.http.auth import AdminPrincipal
from gateway.http.problems import Problem
from registry.store import AgentNotFound
from registry.vendor_models import VendorAgentRecord, VendorRegistration

router = APIRouter(prefix="/vendor-agents", tags=["registry"])


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    summary="Register an OpenAI-compatible or REST webhook agent",
)
async def register_vendor_agent(
    request: Request, response: Response, registration: VendorRegistration, admin: AdminPrincipal
) -> VendorAgentRecord:
    try:
        record = await state_of(request).vendors.register(registration)
    except VendorRegistrationRefused as refused:
        raise Problem(422, refused.reason, refused.title, refused.detail) from None
    state_of(request).registry.changed()  # its skills join /mcp's tools
    await audited(request, admin, "vendor_agent.registered", record.id)
    response.headers["Location"] = f"/vendor-agents/{record.id}"
    return record


@router.get("/{agent_id}", summary="A gateway-run agent's record and upstream configuration")
async def get_vendor_agent(request: Request, agent_id: str, _: AdminPrincipal) -> VendorAgentRecord:
    record = await state_of(request).vendors.get(agent_id)
    if record is None:
        raise AgentNotFound(agent_id)
    return record


@router.delete(
    "/{agent_id}", status_code=status.HTTP_204_NO_CONTENT, summary="Remove a gateway-run agent"
)
async def delete_vendor_agent(request: Request, agent_id: str, admin: AdminPrincipal) -> Response:
    state = state_of(request)
    if await state.vendors.get(agent_id) is None or not await state.agents.delete(agent_id):
        raise AgentNotFound(agent_id)
    state.registry.changed()  # its skills leave /mcp's tools
    await audited(request, admin, "vendor_agent.removed", agent_id)
    # Its users' connected accounts go with it, revoked at the vendor.
    await state.connections.forget_upstream(agent_id)
    await forget_in_sets(request, agent_id, admin)
    return Response(status_code=status.HTTP_204_NO_CONTENT)

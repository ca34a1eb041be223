"""`/mcp-sets`: virtual MCP servers, each a named tool set served at
`/mcp/{name}` (`registry.mcp_sets`, `gateway.mcp.sets`).

Defining, replacing and removing a set needs `switchboard:admin` and is
audited; any authenticated caller may list the sets -- an admin reads each
whole, anyone else its name, title, description and instructions (what each
offers them is still decided per call by the policy). A set naming a server or an agent
that is not registered, or a tool by an exact name that none offers
(`gateway.mcp.sets.unknown_tools`), is refused (422 `unknown-target`): a
typo would otherwise be a set that silently offers less.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response, status

from gateway.api.state import audited, state_of
from gateway.http.auth import AdminPrincipal, CurrentPrincipal
from gateway.http.problems import Problem
from gateway.mcp.approvals import STATUS_TOOL
from gateway.mcp.sets import unknown_tools
from gateway.mcp.tool_search import CALL_TOOL, SEARCH_TOOL
from policies.scopes import ADMIN_SCOPE
from policies.tokens import Principal
from registry.mcp_sets import (
    SET_NAME_PATTERN,
    McpSet,
    McpSetSpec,
    McpSetView,
    NewMcpSet,
    SetExists,
)

router = APIRouter(prefix="/mcp-sets", tags=["mcp"])
GATEWAY_TOOLS = frozenset({STATUS_TOOL, SEARCH_TOOL, CALL_TOOL})


def _not_found(name: str) -> Problem:
    return Problem(404, "not-found", "No such MCP set", f"no set named {name!r}")


async def _check_targets(request: Request, spec: McpSetSpec) -> None:
    state = state_of(request)
    unknown = [s for s in spec.select.servers if await state.mcp.store.config(s) is None]
    unknown += [a for a in spec.select.agents if await state.agents.get(a) is None]
    missing: list[str] = []
    if spec.select.tools:
        servers = await state.mcp.store.all()
        missing = await unknown_tools(spec.select.tools, servers, state.agents, GATEWAY_TOOLS)
    said = ["no MCP server or agent " + ", ".join(repr(u) for u in unknown)] if unknown else []
    if missing:
        said.append(
            "no tool " + ", ".join(repr(m) for m in missing) + " offered by a registered "
            "MCP server or agent (GET /mcp-servers, GET /agents list them)"
        )
    if said:
        raise Problem(
            422, "unknown-target", "The set names what is not registered", "; ".join(said)
        )


def _changed(request: Request, name: str) -> None:
    state_of(request).mcp_sets.changed(name)


async def forget_in_sets(request: Request, target: str, principal: Principal) -> None:
    """``target``, an MCP server or agent just removed, leaves every set that
    named it (`SqlMcpSets.forget_target`): each such set's clients are told,
    and the change is audited as the admin's."""
    for name in await state_of(request).mcp_sets.store.forget_target(target, principal.subject):
        _changed(request, name)
        await audited(
            request, principal, "mcp_set.updated", f"mcp-set:{name}", detail=f"{target} removed"
        )


@router.post("", status_code=status.HTTP_201_CREATED, summary="Define a virtual MCP server")
async def create_set(
    request: Request, response: Response, spec: NewMcpSet, principal: AdminPrincipal
) -> McpSet:
    await _check_targets(request, spec)
    try:
        created = await state_of(request).mcp_sets.store.create(spec, principal.subject)
    except SetExists:
        raise Problem(
            409, "set-exists", "The set exists", f"{spec.name}: PUT /mcp-sets/{spec.name}"
        ) from None
    _changed(request, spec.name)
    await audited(request, principal, "mcp_set.created", f"mcp-set:{spec.name}")
    response.headers["Location"] = f"/mcp-sets/{spec.name}"
    return created


def _shown(found: McpSet, principal: Principal) -> McpSet | McpSetView:
    """An admin reads the whole set; anyone else what a client is told (what
    it selects -- ids, patterns -- and who edited it are the admins')."""
    if principal.has_scope(ADMIN_SCOPE):
        return found
    return McpSetView(
        name=found.name,
        title=found.title,
        description=found.description,
        instructions=found.instructions,
        icon=found.icon,
    )


@router.get("", summary="The virtual MCP servers (each served at /mcp/{name})")
async def list_sets(request: Request, principal: CurrentPrincipal) -> dict[str, Any]:
    found = await state_of(request).mcp_sets.store.all()
    return {"items": [_shown(s, principal) for s in found]}


@router.get("/{name}", summary="One virtual MCP server")
async def get_set(request: Request, name: str, principal: CurrentPrincipal) -> McpSet | McpSetView:
    found = await state_of(request).mcp_sets.store.get(name)
    if found is None:
        raise _not_found(name)
    return _shown(found, principal)


@router.put(
    "/{name}",
    summary="Define or replace a virtual MCP server",
    # 200: replaced; 201: defined now (it did not exist), with its Location.
    responses={201: {"model": McpSet, "description": "Defined: no set had that name"}},
)
async def put_set(
    request: Request, response: Response, name: str, spec: McpSetSpec, principal: AdminPrincipal
) -> McpSet:
    try:
        NewMcpSet(name=name, **spec.model_dump())
    except ValueError:
        raise Problem(
            422, "invalid-name", "Invalid set name", f"a set name matches {SET_NAME_PATTERN}"
        ) from None
    await _check_targets(request, spec)
    stored, new = await state_of(request).mcp_sets.store.replace(name, spec, principal.subject)
    _changed(request, name)
    await audited(
        request, principal, "mcp_set.created" if new else "mcp_set.updated", f"mcp-set:{name}"
    )
    if new:
        response.status_code = status.HTTP_201_CREATED
        response.headers["Location"] = f"/mcp-sets/{name}"
    return stored


@router.delete("/{name}", status_code=status.HTTP_204_NO_CONTENT, summary="Remove a set")
async def delete_set(request: Request, name: str, principal: AdminPrincipal) -> Response:
    if not await state_of(request).mcp_sets.store.delete(name):
        raise _not_found(name)
    _changed(request, name)
    await audited(request, principal, "mcp_set.deleted", f"mcp-set:{name}")
    return Response(status_code=status.HTTP_204_NO_CONTENT)

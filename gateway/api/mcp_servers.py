"""The MCP server registry API (`/mcp-servers`).

Registering a server reached over HTTP needs `switchboard:admin` or
`switchboard:mcp-register`; a stdio server (a command the gateway runs) needs
admin and a command on the operator's allowlist. Refresh, approval and
removal need admin. Reads need a valid token. Admins read every server's
whole record (`McpServerRecord`). Anyone else reads only the servers they may
use (the policy's decision, as for agents), each as a `McpServerView`: no
URL, command line, resource, credential, registrant or health detail, and
only the tools their `/mcp` `tools/list` offers them (`McpFederation.shown`).
No response ever carries a credential's secret.

One name on `/mcp` means one target (`registry.mcp_names`): a registration,
or an approval, that would give a name another target holds, or one of a
reserved form, is refused with 409 (`mcp-name-conflict`, `mcp-name-reserved`)
and audited (event ``mcp.names``).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Request, Response, status

from adapters.mcp import UpstreamError, UpstreamTimeout, UpstreamUnavailable
from gateway.api.mcp_sets import forget_in_sets
from gateway.api.state import audited, state_of
from gateway.federation.federated_tools import CommandNotAllowed, RegistrationRefused, ToolNotFound
from gateway.http.auth import AdminPrincipal, CurrentPrincipal
from gateway.http.problems import Problem, ProblemMapping
from policies.scopes import ADMIN_SCOPE, MCP_REGISTER_SCOPE
from registry.mcp_models import (
    ApproveRequest,
    McpServerList,
    McpServerRecord,
    McpServerView,
    McpToolRecord,
    RefreshResult,
)
from registry.mcp_names import NameConflict, NameReserved
from registry.mcp_registration import McpServerRegistration
from registry.mcp_store import (
    McpServerConflict,
    McpServerNotFound,
    McpToolNotFound,
    ToolDigestMismatch,
)
from registry.openapi_refs import OpenApiRefused

# What the MCP registry and federation raise, as problems (`install_error_handlers`).
PROBLEMS: list[ProblemMapping] = [
    (
        McpServerConflict,
        409,
        "mcp-server-exists",
        "An MCP server or agent has this id or resource",
    ),
    (NameReserved, 409, "mcp-name-reserved", "The name is of a form reserved for others"),
    (NameConflict, 409, "mcp-name-conflict", "The name already means another target on /mcp"),
    (McpServerNotFound, 404, "mcp-server-not-found", "No such MCP server"),
    (McpToolNotFound, 404, "mcp-tool-not-found", "No such tool on this MCP server"),
    (ToolNotFound, 404, "mcp-tool-not-found", "No such federated tool"),
    (ToolDigestMismatch, 409, "tool-changed", "The tool changed since it was reviewed"),
    (RegistrationRefused, 403, "insufficient-scope", "Insufficient scope"),
    (CommandNotAllowed, 422, "command-not-allowed", "The command is not allowlisted"),
    (OpenApiRefused, 422, "openapi-refused", "The OpenAPI document cannot be used"),
    (UpstreamTimeout, 504, "mcp-upstream-timeout", "The MCP server did not answer in time"),
    (UpstreamUnavailable, 502, "mcp-upstream-unavailable", "The MCP server is unreachable"),
    (UpstreamError, 502, "mcp-upstream-error", "The MCP server answered with an error"),
]

router = APIRouter(prefix="/mcp-servers", tags=["mcp"])


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    summary="Register an MCP server (Streamable HTTP URL or stdio command)",
)
async def register_server(
    request: Request,
    response: Response,
    registration: McpServerRegistration,
    principal: CurrentPrincipal,
) -> McpServerRecord:
    if not (principal.has_scope(ADMIN_SCOPE) or principal.has_scope(MCP_REGISTER_SCOPE)):
        raise Problem(
            403,
            "insufficient-scope",
            "Insufficient scope",
            f"registering an MCP server needs {ADMIN_SCOPE} or {MCP_REGISTER_SCOPE}",
        )
    record = await state_of(request).mcp_servers.register(registration, principal)
    await audited(request, principal, "mcp_server.registered", record.id)
    response.headers["Location"] = f"/mcp-servers/{record.id}"
    return record


@router.get("", summary="The MCP servers the caller may use, with their tools")
async def list_servers(request: Request, principal: CurrentPrincipal) -> McpServerList:
    state = state_of(request)
    return McpServerList(
        items=await state.mcp_servers.shown(principal, await state.mcp.store.all())
    )


@router.get("/{server_id}", summary="One MCP server, with its tools")
async def get_server(
    request: Request, server_id: str, principal: CurrentPrincipal
) -> McpServerRecord | McpServerView:
    state = state_of(request)
    record = await state.mcp.store.get(server_id)
    shown = await state.mcp_servers.shown(principal, [record] if record else [])
    if not shown:
        raise McpServerNotFound(server_id)
    return shown[0]


@router.delete(
    "/{server_id}", status_code=status.HTTP_204_NO_CONTENT, summary="Remove an MCP server"
)
async def delete_server(request: Request, server_id: str, admin: AdminPrincipal) -> Response:
    state = state_of(request)
    if not await state.mcp_servers.remove(server_id):
        raise McpServerNotFound(server_id)
    await audited(request, admin, "mcp_server.removed", server_id)
    await state.connections.forget_upstream(server_id)
    await forget_in_sets(request, server_id, admin)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/{server_id}/refresh",
    summary="List the server's tools now; a changed definition is quarantined",
)
async def refresh_server(
    request: Request, server_id: str, principal: AdminPrincipal
) -> RefreshResult:
    result = await state_of(request).mcp_servers.refresh(server_id, principal)
    await audited(request, principal, "mcp_server.refreshed", server_id)
    return result


@router.post(
    "/{server_id}/tools/{tool}/approve",
    summary="Approve a tool's current definition (pins its digest)",
)
async def approve_tool(
    request: Request,
    server_id: str,
    tool: str,
    principal: AdminPrincipal,
    body: Annotated[ApproveRequest | None, Body()] = None,
) -> McpToolRecord:
    digest = body.digest if body else None
    record = await state_of(request).mcp_servers.approve(server_id, tool, digest, principal)
    await audited(
        request, principal, "mcp_tool.approved", server_id, detail=f"{tool} {record.digest}"
    )
    return record

"""`/ui/mcp`: the federated MCP servers, their tools, prompts and resources.

Every read is the REST API's own (`gateway.api.mcp_servers`): an admin sees
each server's whole record -- every tool with its state, the screen's flags,
and for a tool changed since it was approved (quarantined) the approved
definition against the new one as a diff -- and approves or re-approves a
tool through `POST /mcp-servers/{id}/tools/{tool}/approve`'s function, with
the digest of the definition on the page: a tool that changed again since the
page was drawn is refused (409), never approved unseen. Anyone else sees the
servers they may use with only the tools their `/mcp` `tools/list` offers.
Admins register a Streamable HTTP server (with a static header credential,
or none) and remove one, through the API's own functions and checks.

Prompts and resources are listed live by the `/mcp` door's own service
(`gateway.federation.offerings.McpOfferings`), with the user as the caller: a user
sees what their `prompts/list` and `resources/list` would offer; an admin
sees everything the server offers, a withheld prompt with its flags.
"""

from __future__ import annotations

import weakref
from typing import Any

from fastapi import APIRouter, Request, Response
from pydantic import ValidationError

from gateway.api import mcp_servers as mcp_api
from gateway.api.state import state_of
from gateway.console.diffs import has_hidden, json_diff, reveal
from gateway.console.web import (
    PREFIX,
    ConsoleError,
    ConsoleRoute,
    current_user,
    page,
    posted,
    redirect,
    require_admin,
    validated,
)
from gateway.delegation.pipeline import Caller
from gateway.federation.federation import McpFederation
from gateway.federation.offerings import McpOfferings
from policies.scopes import ADMIN_SCOPE
from policies.tokens import Principal
from registry.mcp_models import (
    ApproveRequest,
    McpServerRecord,
    McpToolRecord,
    ToolState,
)
from registry.mcp_registration import McpServerRegistration

router = APIRouter(prefix=PREFIX + "/mcp", route_class=ConsoleRoute, include_in_schema=False)


@router.get("")
async def servers_page(request: Request) -> Response:
    user = await current_user(request)
    found = await mcp_api.list_servers(request, user.principal())
    return page(
        request,
        user,
        "mcp_servers.html",
        servers=found.items,
        removed=request.query_params.get("removed"),
    )


@router.post("")
async def register(request: Request) -> Response:
    """Register a Streamable HTTP server with the API's own function
    (`POST /mcp-servers`): the same checks -- a field refused is said by its
    name -- the same probe of the server, the same audit. Admins (or holders
    of the register scope, as for the API)."""
    user = await current_user(request)
    form = await posted(request, user.csrf)
    registration = _registration(form)
    record = await mcp_api.register_server(request, Response(), registration, user.principal())
    return redirect(f"{PREFIX}/mcp/{record.id}")


@router.post("/{server_id}/delete")
async def remove(request: Request, server_id: str) -> Response:
    user = await current_user(request)
    await posted(request, user.csrf)
    await require_admin(request, user)
    await mcp_api.delete_server(request, server_id, user.principal())
    return redirect(f"{PREFIX}/mcp?removed={server_id}")


def _registration(form: dict[str, str]) -> McpServerRegistration:
    body: dict[str, Any] = {
        "name": form.get("name", ""),
        "url": form.get("url") or None,
        "prefix_tools": form.get("prefix_tools") == "on",
    }
    if form.get("id"):
        body["id"] = form["id"]
    if form.get("header_value"):
        body["credential"] = {
            "type": "static_header",
            "header": form.get("header_name") or "Authorization",
            "value": form["header_value"],
        }
    return validated(McpServerRegistration, body, "The server was not registered", "server")


@router.get("/{server_id}")
async def server_page(request: Request, server_id: str) -> Response:
    user = await current_user(request)
    principal = user.principal()
    server = await mcp_api.get_server(request, server_id, principal)
    tools = _reviewed(server.tools) if isinstance(server, McpServerRecord) else []
    return page(
        request,
        user,
        "mcp_server.html",
        server=server,
        record=isinstance(server, McpServerRecord),
        review=tools,
        waiting=sum(1 for t in tools if t["tool"].state != ToolState.APPROVED),
        offered=await _offered(request, principal, server.id),
    )


@router.post("/{server_id}/approve")
async def approve(request: Request, server_id: str) -> Response:
    user = await current_user(request)
    form = await posted(request, user.csrf)
    await require_admin(request, user)
    tool = form.get("tool", "")
    try:
        body = ApproveRequest(digest=form.get("digest") or None)
    except ValidationError:
        raise ConsoleError(422, "The digest cannot be read") from None
    if not tool:
        raise ConsoleError(422, "Which tool?")
    await mcp_api.approve_tool(request, server_id, tool, user.principal(), body)
    return redirect(f"{PREFIX}/mcp/{server_id}")


@router.post("/{server_id}/refresh")
async def refresh(request: Request, server_id: str) -> Response:
    """List the server's tools now (`POST /mcp-servers/{id}/refresh`): a changed
    definition is quarantined and shows here for review."""
    user = await current_user(request)
    await posted(request, user.csrf)
    await require_admin(request, user)
    await mcp_api.refresh_server(request, server_id, user.principal())
    return redirect(f"{PREFIX}/mcp/{server_id}")


def _reviewed(tools: list[McpToolRecord]) -> list[dict[str, Any]]:
    """Each tool as an admin reviews it: waiting ones first, the description
    with its hidden characters made visible, and what changed since approval."""
    order = {ToolState.QUARANTINED: 0, ToolState.PENDING: 1, ToolState.APPROVED: 2}
    shown = []
    for tool in sorted(tools, key=lambda t: (order[t.state], t.name)):
        description = str(tool.definition.get("description") or "")
        diff = (
            json_diff(tool.approved_definition, tool.definition, "approved", "now")
            if tool.approved_definition is not None
            else []
        )
        shown.append(
            {
                "tool": tool,
                "description": reveal(description),
                "hidden": has_hidden(description),
                "diff": diff,
            }
        )
    return shown


# One listing service per federation (an app's; tests build several).
_OFFERINGS: weakref.WeakKeyDictionary[McpFederation, McpOfferings] = weakref.WeakKeyDictionary()


def offerings_of(request: Request) -> McpOfferings:
    """The `/mcp` door's listing service over this app's federation (its
    listings are kept a second; nothing else is kept)."""
    federation = state_of(request).mcp
    found = _OFFERINGS.get(federation)
    if found is None:
        found = _OFFERINGS[federation] = McpOfferings(federation)
    return found


async def _offered(request: Request, principal: Principal, server_id: str) -> dict[str, Any]:
    offerings = offerings_of(request)
    if principal.has_scope(ADMIN_SCOPE):
        resources, templates, prompts = await offerings.of_server(server_id)
    else:
        caller = Caller.user(principal)
        resources = [r for r in await offerings.resources(caller) if r.server_id == server_id]
        templates = [t for t in await offerings.templates(caller) if t.server_id == server_id]
        prompts = [p for p in await offerings.prompts(caller) if p.server_id == server_id]
    return {"resources": resources, "templates": templates, "prompts": prompts}

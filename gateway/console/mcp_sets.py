"""`/ui/mcp-sets`: virtual MCP servers (`/mcp/{name}`, docs/mcp.md).

Everyone sees the sets and where to point a client; an admin defines,
replaces and removes them through the REST API's own functions
(`gateway.api.mcp_sets`): the same checks -- a bad field is refused with
the API's message for that field, an unknown server or agent with the
API's problem -- the same audit. Each form carries the session's CSRF token.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response

from gateway.api import mcp_sets as sets_api
from gateway.api.state import state_of
from gateway.console.web import (
    PREFIX,
    ConsoleRoute,
    current_user,
    page,
    posted,
    redirect,
    require_admin,
    validated,
)
from registry.mcp_sets import McpSetSpec

router = APIRouter(prefix=PREFIX + "/mcp-sets", route_class=ConsoleRoute, include_in_schema=False)
_LISTS = ("servers", "agents", "tags", "tools")


@router.get("")
async def sets_page(request: Request) -> Response:
    user = await current_user(request)
    found = await sets_api.list_sets(request, user.principal())
    return page(
        request,
        user,
        "mcp_sets.html",
        sets=found["items"],
        base=state_of(request).settings.effective_public_url,
        saved=request.query_params.get("saved", ""),
        removed=request.query_params.get("removed", ""),
    )


def _spec(form: dict[str, str]) -> McpSetSpec:
    """The form as `PUT /mcp-sets/{name}` takes it: each list one per line
    (or comma-separated); a field the API refuses, said by its name."""
    select: dict[str, Any] = {
        key: [item.strip() for line in form.get(key, "").splitlines() for item in line.split(",")]
        for key in _LISTS
    }
    select = {key: [item for item in items if item] for key, items in select.items()}
    body: dict[str, Any] = {
        "title": form.get("title", ""),
        "description": form.get("description", ""),
        "instructions": form.get("instructions", ""),
        "icon": form.get("icon") or None,
        "select": select,
        "tool_search": form.get("tool_search") or "off",
    }
    return validated(McpSetSpec, body, "The set was not saved", "set")


@router.post("")
async def save(request: Request, response: Response) -> Response:
    user = await current_user(request)
    form = await posted(request, user.csrf)
    await require_admin(request, user)
    name = form.get("name", "").strip()
    await sets_api.put_set(request, response, name, _spec(form), user.principal())
    return redirect(f"{PREFIX}/mcp-sets?saved={name}")


@router.post("/{name}/delete")
async def remove(request: Request, name: str) -> Response:
    user = await current_user(request)
    await posted(request, user.csrf)
    await require_admin(request, user)
    await sets_api.delete_set(request, name, user.principal())
    return redirect(f"{PREFIX}/mcp-sets?removed={name}")

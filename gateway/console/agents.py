"""`/ui/agents`: the registry, searched with its own search.

Search, record, card (normalised to A2A 1.0, and as registered), versions with
a diff between two revisions, skills with their contracts: every read is the
REST API's own route function (`gateway.api.agents`), so a user finds and
opens only the agents `GET /agents` shows them, with only the skills they may
call; an agent they may not use is "not found", as it is there. An admin
also sees the agent's credential as `GET /agents/{id}/credentials` shows it:
client id, method, date -- never a secret. Health is the registry's last
check; no history of checks is kept. Admins register an agent by its card's
URL and remove one, through the API's own functions and checks.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from pydantic import ValidationError

from gateway.api import agents as agents_api
from gateway.api import credentials as credentials_api
from gateway.console.diffs import DiffLine, json_diff
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
from policies.scopes import ADMIN_SCOPE
from policies.tokens import Principal
from registry.models import AgentQuery, AgentRegistration
from registry.store import AgentNotFound

router = APIRouter(prefix=PREFIX + "/agents", route_class=ConsoleRoute, include_in_schema=False)
REVISION = Query(ge=1, le=2**31 - 1)


@router.get("")
async def agents_page(
    request: Request,
    q: str | None = None,
    skill: str | None = None,
    tag: str | None = None,
    cursor: str | None = None,
) -> Response:
    user = await current_user(request)
    try:
        query = AgentQuery(
            q=q or None, skill=skill or None, tag=tag or None, cursor=cursor, limit=50
        )
    except ValidationError:
        raise ConsoleError(422, "The search cannot be read") from None
    found = await agents_api.list_agents(request, user.principal(), query)
    return page(
        request,
        user,
        "agents.html",
        agents=found.items,
        next_cursor=found.next_cursor,
        q=q or "",
        skill=skill or "",
        tag=tag or "",
        removed=request.query_params.get("removed"),
    )


@router.post("")
async def register(request: Request) -> Response:
    """Register an agent by its card's URL (admins): `POST /agents`'s own
    function -- the card fetched through the SSRF-checked fetcher, validated,
    its skills' names checked, the registration audited."""
    user = await current_user(request)
    form = await posted(request, user.csrf)
    await require_admin(request, user)
    body: dict[str, Any] = {"card_url": form.get("card_url") or None}
    if form.get("id"):
        body["id"] = form["id"]
    registration = validated(AgentRegistration, body, "The agent was not registered", "agent")
    if registration.card_url is None:
        raise ConsoleError(422, "The agent was not registered", "card_url: the card's URL")
    record = await agents_api.register_agent(request, Response(), registration, user.principal())
    return redirect(f"{PREFIX}/agents/{record.id}")


@router.post("/{agent_id}/delete")
async def remove(request: Request, agent_id: str) -> Response:
    user = await current_user(request)
    await posted(request, user.csrf)
    await require_admin(request, user)
    await agents_api.delete_agent(request, agent_id, user.principal())
    return redirect(f"{PREFIX}/agents?removed={agent_id}")


@router.get("/{agent_id}")
async def agent_page(
    request: Request,
    agent_id: str,
    old: Annotated[int | None, REVISION] = None,
    new: Annotated[int | None, REVISION] = None,
) -> Response:
    user = await current_user(request)
    principal = user.principal()
    record = await agents_api.get_agent(request, agent_id, principal)
    card = await agents_api.get_card(request, agent_id, principal)
    original = await agents_api.get_card(request, agent_id, principal, original=True)
    versions = await agents_api.list_versions(request, agent_id, principal)
    credential = await _credential(request, agent_id, principal)
    health = await agents_api.health_history(request, agent_id, principal, limit=20)
    diff: list[tuple[str, str]] = []
    if len(versions) > 1:
        new = new or versions[0].revision
        old = old or next((v.revision for v in versions if v.revision < new), versions[-1].revision)
        before = await agents_api.get_card(request, agent_id, principal, revision=old)
        after = await agents_api.get_card(request, agent_id, principal, revision=new)
        diff = card_diff(before, after, old, new)
    return page(
        request,
        user,
        "agent.html",
        agent=record,
        card=card,
        original=original,
        same=original == card,
        versions=versions,
        diff=diff,
        old=old,
        new=new,
        credential=credential,
        health=health,
    )


async def _credential(
    request: Request, agent_id: str, principal: Principal
) -> credentials_api.CredentialInfo | None:
    """How the agent proves who it is (`GET /agents/{id}/credentials`, admins
    only): its client id, method and date -- never a secret, which that
    function returns only when it creates one."""
    if not principal.has_scope(ADMIN_SCOPE):
        return None
    try:
        return await credentials_api.get_credentials(request, agent_id, principal)
    except AgentNotFound:
        return None  # it has none


def card_diff(before: dict[str, Any], after: dict[str, Any], old: int, new: int) -> list[DiffLine]:
    """A unified diff of two cards' JSON, each line with its kind
    (``add``, ``del``, ``hunk``, ``same``) for the page to mark."""
    return json_diff(before, after, f"revision {old}", f"revision {new}")

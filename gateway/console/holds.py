"""`/ui/holds` (admins): what the policy's coordination rules keep in force --
open holds, running cooldowns, leases, budgets' counts -- and releasing one.

Both through `gateway.api.coordination`'s own functions: the list is `GET
/coordination/holds` (filtered the same way, by entity or one of its keys,
and by rule), **Release** is `DELETE /coordination/holds/{rule}/{key}`:
it ends what the rule keeps for that key (a hold an agent never closed, a
cooldown), audited with the admin's name, and deferred calls waiting on it
go on.
"""

from __future__ import annotations

import re
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response

from gateway.api import coordination as coordination_api
from gateway.console.web import (
    PREFIX,
    ConsoleError,
    ConsoleRoute,
    current_user,
    page,
    posted,
    redirect,
    require_admin,
)

router = APIRouter(prefix=PREFIX + "/holds", route_class=ConsoleRoute, include_in_schema=False)
ENTITY = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}(:.{1,256})?$"


@router.get("")
async def holds_page(
    request: Request,
    entity: Annotated[str | None, Query(max_length=64 + 1 + 256)] = None,
    rule: Annotated[str | None, Query(max_length=64)] = None,
) -> Response:
    user = await current_user(request)
    await require_admin(request, user)
    entity, rule = entity or None, rule or None
    if entity is not None and not _matches(ENTITY, entity):
        raise ConsoleError(422, "The entity cannot be read", "an entity, or entity:key")
    if rule is not None and not _matches(coordination_api.NAME, rule):
        raise ConsoleError(422, "No rule has such a name")
    if request.app.state.switchboard.delegations.coordination is None:
        items: list[dict[str, object]] = []
    else:
        found = await coordination_api.list_holds(request, user.principal(), entity, rule)
        items = found["items"]
    return page(
        request,
        user,
        "holds.html",
        items=items,
        entity=entity or "",
        rule=rule or "",
        released=request.query_params.get("released", ""),
    )


@router.post("/release")
async def release(request: Request) -> Response:
    user = await current_user(request)
    form = await posted(request, user.csrf)
    await require_admin(request, user)
    rule, key = form.get("rule", ""), form.get("key", "")
    if not _matches(coordination_api.NAME, rule) or not 0 < len(key) <= 256:
        raise ConsoleError(422, "Which rule, for which key?")
    await coordination_api.release_hold(request, rule, key, user.principal())
    return redirect(f"{PREFIX}/holds?released={rule}")


def _matches(pattern: str, value: str) -> bool:
    """What the API's own query and path patterns let through."""
    return re.fullmatch(pattern, value) is not None

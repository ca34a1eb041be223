"""`/ui/api-keys`: API keys (docs/security.md#api-keys), through the REST
API's own functions (`gateway.api.api_keys`): the same rules -- your own
keys within your scopes; an admin's for services too -- the same audit,
the same words when a key is refused.

A new key is shown once, on the page the making POST answers -- never in a
URL, never on a later page (every console answer is `Cache-Control:
no-store`) -- exactly as the API returns it once.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response

from gateway.api import api_keys as keys_api
from gateway.console.web import (
    PREFIX,
    ConsoleRoute,
    current_user,
    page,
    posted,
    redirect,
    validated,
)
from gateway.delegation.api_keys import ApiKeySpec

router = APIRouter(prefix=PREFIX + "/api-keys", route_class=ConsoleRoute, include_in_schema=False)


@router.get("")
async def keys_page(request: Request) -> Response:
    user = await current_user(request)
    found = await keys_api.list_keys(request, user.principal())
    revoked = request.query_params.get("revoked", "")
    return page(request, user, "api_keys.html", keys=found, made=None, revoked=revoked)


def _spec(form: dict[str, str]) -> ApiKeySpec:
    body: dict[str, Any] = {
        "name": form.get("name", "").strip(),
        "scopes": form.get("scopes", "").split(),
        "expires": form.get("expires", "").strip() or None,
        "rate": form.get("rate", "").strip() or None,
        "budget": form.get("budget", "").strip() or None,
    }
    if form.get("service", "").strip():
        body["service"] = form["service"].strip()
    return validated(ApiKeySpec, body, "No key was made", "key")


@router.post("")
async def make(request: Request) -> Response:
    user = await current_user(request)
    form = await posted(request, user.csrf)
    made = await keys_api.create_key(request, _spec(form), user.principal())
    found = await keys_api.list_keys(request, user.principal())
    return page(request, user, "api_keys.html", keys=found, made=made, revoked="")


@router.post("/{key_id}/revoke")
async def revoke(request: Request, key_id: str) -> Response:
    user = await current_user(request)
    await posted(request, user.csrf)
    await keys_api.revoke_key(request, key_id, user.principal())
    return redirect(f"{PREFIX}/api-keys?revoked={key_id}")

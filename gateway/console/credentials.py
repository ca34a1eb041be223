"""`/ui/agents/{id}/credentials`: admins issue and revoke the credential an
agent acts with at `/oauth/token` (`gateway.api.credentials`' own functions:
its checks, its audit record).

A client secret is shown once, on the page the issuing POST answers -- never
stored readable, never in a URL, never on a later page (every console
answer is `Cache-Control: no-store`) -- exactly as the API returns it once.
`private_key_jwt` takes the agent's public keys (a JWKS) instead; the
store refuses private key material and unusable keys with the API's words.
"""

from __future__ import annotations

import json

from fastapi import APIRouter, Request, Response

from gateway.api import credentials as credentials_api
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
from gateway.http.json_body import too_deep

router = APIRouter(prefix=PREFIX + "/agents", route_class=ConsoleRoute, include_in_schema=False)
MAX_JWKS = 64 * 1024
MAX_JWKS_DEPTH = 8  # {keys: [{..., x5c: [...]}]}


@router.post("/{agent_id}/credentials")
async def issue(request: Request, agent_id: str) -> Response:
    user = await current_user(request)
    form = await posted(request, user.csrf)
    await require_admin(request, user)
    body: dict[str, object] = {"method": form.get("method") or "client_secret"}
    if body["method"] == "private_key_jwt":
        text = form.get("jwks", "")
        if len(text.encode()) > MAX_JWKS:
            raise ConsoleError(422, "No credential was issued", f"jwks: over {MAX_JWKS} bytes")
        if too_deep(text.encode(), MAX_JWKS_DEPTH):
            raise ConsoleError(422, "No credential was issued", "jwks: nested too deeply")
        try:
            body["jwks"] = json.loads(text)
        except (ValueError, RecursionError):
            raise ConsoleError(422, "No credential was issued", "jwks: not JSON") from None
    wanted = validated(
        credentials_api.CredentialRequest, body, "No credential was issued", "credential"
    )
    issued = await credentials_api.issue_credentials(
        request, Response(), agent_id, user.principal(), wanted
    )
    return page(request, user, "credential_issued.html", agent_id=agent_id, issued=issued)


@router.post("/{agent_id}/credentials/revoke")
async def revoke(request: Request, agent_id: str) -> Response:
    user = await current_user(request)
    await posted(request, user.csrf)
    await require_admin(request, user)
    await credentials_api.revoke_credentials(request, agent_id, user.principal())
    return redirect(f"{PREFIX}/agents/{agent_id}")

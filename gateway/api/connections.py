"""`/connections`: a user's connected accounts at upstreams that trust only
their own authorization servers (`user_oauth`, docs/connections.md).

A user lists and removes their own; an admin lists anyone's (``?all=true``)
and removes any -- when a person leaves, or a token is suspected. Removing
one revokes it at the upstream's authorization server (RFC 7009) where that
server offers revocation. Tokens are never shown: a connection is who, where,
which scopes and until when. Another user's connection is "not found", not
"forbidden": its id says nothing.

`GET /oauth/client-metadata.json` is the gateway's Client ID Metadata
Document, which an authorization server fetches when the gateway uses its URL
as its client id (MCP authorization, "Client ID Metadata Documents"): public,
as it must be.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request, Response, status
from pydantic import BaseModel

from gateway.agents.consents import connectable
from gateway.api.state import audited, state_of
from gateway.connections.clients import CLIENT_METADATA_PATH
from gateway.connections.connection import Connection, ConnectionInfo
from gateway.http.auth import CurrentPrincipal
from gateway.http.problems import Problem
from policies.scopes import ADMIN_SCOPE
from policies.tokens import Principal

router = APIRouter(tags=["connections"])
logger = logging.getLogger(__name__)
CONNECTION_ID = r"^[A-Za-z0-9_-]{1,64}$"


class ConnectionView(BaseModel):
    id: str
    upstream: str
    subject: str
    issuer: str
    scope: str | None
    expires_at: datetime | None
    authorization_server: str
    connected_at: datetime
    refreshed_at: datetime
    used_at: datetime | None


class ConnectionList(BaseModel):
    items: list[ConnectionView]


def view_of(connection: ConnectionInfo) -> ConnectionView:
    return ConnectionView(
        id=connection.id,
        upstream=connection.upstream,
        subject=connection.subject,
        issuer=connection.issuer,
        scope=connection.scope,
        expires_at=connection.expires_at,
        authorization_server=connection.authorization_server,
        connected_at=connection.created_at,
        refreshed_at=connection.refreshed_at,
        used_at=connection.used_at,
    )


def _not_found(connection_id: str) -> Problem:
    return Problem(404, "connection-not-found", "No such connection", connection_id)


async def audit_connection(
    request: Request, principal: Principal, connection: Connection, event: str, outcome: str
) -> None:
    # Whose connection (an admin may remove anyone's); never a token.
    detail = f"connection {connection.id} of {connection.subject} ({connection.issuer})"
    await audited(request, principal, event, connection.upstream, outcome=outcome, detail=detail)


@router.get("/connections", summary="Connected accounts: yours, or everyone's for an admin")
async def list_connections(
    request: Request,
    principal: CurrentPrincipal,
    all: Annotated[bool, Query(description="every user's (admins only)")] = False,
    upstream: Annotated[str | None, Query(max_length=64)] = None,
) -> ConnectionList:
    vault = state_of(request).connections.vault
    if all and not principal.has_scope(ADMIN_SCOPE):
        raise Problem(403, "insufficient-scope", "Insufficient scope", f"?all needs {ADMIN_SCOPE}")
    found = (
        await vault.listed(upstream=upstream)
        if all
        else await vault.listed(
            subject=principal.subject, issuer=principal.issuer, upstream=upstream
        )
    )
    return ConnectionList(items=[view_of(c) for c in found])


@router.delete(
    "/connections/{connection_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Disconnect: forget the tokens and revoke them at the authorization server",
)
async def delete_connection(
    request: Request,
    principal: CurrentPrincipal,
    connection_id: Annotated[str, Path(pattern=CONNECTION_ID)],
) -> Response:
    connections = state_of(request).connections
    found = await connections.vault.by_id(connection_id)
    if found is None or not (
        principal.has_scope(ADMIN_SCOPE)
        or (found.subject == principal.subject and found.issuer == principal.issuer)
    ):
        raise _not_found(connection_id)
    removed = await connections.disconnect(connection_id)
    if removed is None:  # removed meanwhile
        raise _not_found(connection_id)
    gone, revoked = removed
    # The tokens are forgotten either way; whether the server confirmed it
    # also stopped honouring them is on the record.
    outcome = "ok" if revoked else "not_revoked_upstream"
    await audit_connection(request, principal, gone, "connection.revoked", outcome)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get(
    CLIENT_METADATA_PATH,
    summary="The gateway's OAuth Client ID Metadata Document",
)
async def client_metadata(request: Request) -> dict[str, Any]:
    connections = state_of(request).connections
    if connections.clients.metadata_url is None:
        # Only an https public URL can be a client id (the document's own URL).
        raise Problem(404, "not-found", "Not found", "the gateway's public URL is not https")
    state = state_of(request)
    upstreams = [
        config.id
        for config in await state.mcp.store.configs()
        if config.credential.get("type") == "user_oauth"
    ]
    # And the agents whose users connect: each upstream its own redirect URI,
    # which the authorization server matches exactly against this list.
    async for agent, card in state.agents.all_with_cards():
        try:
            if await connectable(agent.id, card, state.vendors.user_oauth_upstream):
                upstreams.append(agent.id)
        except Exception:  # one agent's trouble does not take every connection down
            logger.exception("agent %s left out of the client metadata document", agent.id)
    return connections.clients.metadata(upstreams)

"""`/ui/connections`: a user's connected accounts, and connecting one.

The page lists the upstreams whose users connect their own accounts
(`user_oauth` MCP servers, and A2A agents whose cards ask for each user's
own token: `gateway.agents.consents`) with this user's connection to each, if any -- its scopes,
expiry and last use -- and, for an admin, everyone's; **Connect** sends
the browser to the upstream's authorization server (`Connections.begin`),
whose answer comes back to `/ui/connections/{server}/callback` (`.complete`);
**Disconnect** is `DELETE /connections/{id}` (the tokens forgotten and
revoked at the server).

The callback is accepted only in the console session that started it, for
the user who started it, with the `state` it was sent with (the sealed
cookie of `gateway.connections.pending`): a link to the callback sent to
another user -- to connect their gateway account to the sender's account at
the vendor -- finds no connection under way in their browser and is refused.
"""

from __future__ import annotations

import functools
import hmac
import logging
from typing import Annotated

from fastapi import APIRouter, Path, Query, Request, Response

from gateway.agents.consents import connectable
from gateway.api import connections as connections_api
from gateway.api.state import state_of
from gateway.connections.errors import ConnectFailed
from gateway.connections.pending import CONNECT_SECONDS, PendingSeal, session_binding
from gateway.connections.upstream import Upstream
from gateway.console.web import (
    PREFIX,
    ConsoleError,
    ConsoleRoute,
    console_of,
    current_user,
    page,
    posted,
    redirect,
)
from gateway.delegation.pipeline import Caller
from gateway.delegation.vendor_agents import CredentialUnavailable
from gateway.federation.credentials import user_oauth_upstream
from policies.keys import KeySealError
from policies.scopes import ADMIN_SCOPE, ScopeSyntaxError, parse_scopes

logger = logging.getLogger(__name__)
router = APIRouter(
    prefix=PREFIX + "/connections", route_class=ConsoleRoute, include_in_schema=False
)
SERVER_ID = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
COOKIE = "switchboard-connect"


def _seal(request: Request) -> PendingSeal:
    settings = console_of(request).settings
    # Without a secret only in --dev, as the console's login state.
    return PendingSeal(settings.sealing_secret or settings.effective_resource_id)


def _cookie(request: Request) -> str:
    return ("__Host-" if console_of(request).secure else "") + COOKIE


async def _upstream(request: Request, upstream_id: str) -> Upstream | None:
    """The MCP server or A2A agent of that id whose users connect their own
    accounts (the two share one id space). Raises `KeySealError` if a
    server's client secret cannot be opened."""
    state = state_of(request)
    config = await state.mcp.store.config(upstream_id)
    if config is not None:
        return user_oauth_upstream(config, console_of(request).settings.sealing_secret)
    found = await state.agents.get_with_card(upstream_id)
    if found is None:
        return None
    try:
        return await connectable(
            upstream_id,
            found[1],
            functools.partial(state.vendors.user_oauth_upstream, with_secret=True),
            state.agent_clients.get,
        )
    except CredentialUnavailable as exc:
        raise KeySealError(str(exc)) from None


@router.get("")
async def connections_page(request: Request) -> Response:
    user = await current_user(request)
    state = state_of(request)
    mine = {
        c.upstream: c
        for c in await state.connections.vault.listed(subject=user.subject, issuer=user.issuer)
    }
    principal = user.principal()
    upstreams = []
    for config in await state.mcp.store.configs():
        if config.credential.get("type") != "user_oauth":
            continue
        record = await state.mcp.store.get(config.id)
        # Only servers the policy lets this user use (what the API shows them).
        if record is not None and state.mcp_servers.visible(principal, record):
            upstreams.append(
                {"id": config.id, "kind": "MCP server", "connection": mine.get(config.id)}
            )
    caller = Caller.user(principal)
    async for agent, card in state.agents.all_with_cards():
        # Agents that take each user's own token (their cards ask for it, or
        # their registration: a vendor agent), which this user may call a
        # skill of (`gateway.agents.consents`).
        if not state.delegations.usable_skills(caller, agent.id, card):
            continue
        try:
            upstream = await connectable(agent.id, card, state.vendors.user_oauth_upstream)
            listed = upstream is not None
        except CredentialUnavailable:
            listed = True  # its client's secret cannot be opened: Connect says so
        if listed:
            upstreams.append({"id": agent.id, "kind": "agent", "connection": mine.get(agent.id)})
    # An admin sees who is connected to what (never a token) and may revoke any.
    everyone = await state.connections.vault.listed() if ADMIN_SCOPE in user.scopes else []
    return page(
        request,
        user,
        "connections.html",
        upstreams=upstreams,
        everyone=everyone,
        connected=request.query_params.get("connected", ""),
        removed=request.query_params.get("removed", ""),
    )


@router.get("/{server_id}/callback")
async def callback(
    request: Request,
    server_id: Annotated[str, Path(pattern=SERVER_ID)],
    code: str | None = None,
    state: str | None = None,
    iss: str | None = None,
    error: str | None = None,
) -> Response:
    user = await current_user(request)
    console = console_of(request)
    pending = _seal(request).open(request.cookies.get(_cookie(request)))
    session = request.cookies.get(console.session_cookie) or ""
    if (
        pending is None
        # Each server its own redirect URI (the mix-up attack, RFC 9700 §4.4).
        or pending.upstream != server_id
        or not hmac.compare_digest(pending.session, session_binding(session))
        or (pending.subject, pending.issuer) != (user.subject, user.issuer)
    ):
        raise ConsoleError(
            400, "Connecting failed", "no connection is under way in this session; start again"
        )
    # RFC 6749 §10.12: the state this browser was sent with.
    if state is None or not hmac.compare_digest(state.encode(), pending.state.encode()):
        raise ConsoleError(400, "Connecting failed", "the answer does not match this connection")
    if error is not None or not code:
        said = (error or "no code")[:100]
        raise ConsoleError(401, "Connecting failed", f"the authorization server said: {said}")
    app = state_of(request)
    try:
        upstream = await _upstream(request, pending.upstream)
    except KeySealError as exc:
        raise ConsoleError(
            500, "This upstream's client secret cannot be opened", str(exc)
        ) from None
    if upstream is None:
        raise ConsoleError(404, "Connecting failed", f"{pending.upstream} is gone")
    try:
        connection = await app.connections.complete(upstream, pending, code=code, iss=iss)
    except ConnectFailed as failed:
        raise ConsoleError(502, "Connecting failed", str(failed)) from None
    await connections_api.audit_connection(
        request, user.principal(), connection, "connection.created", "ok"
    )
    # The server's tools are listed with its registrant's connection: if this
    # was it, list them now rather than at the next reconnection.
    app.mcp.upstreams.restart(pending.upstream)
    # The user's flow runs and A2A calls waiting for this go on. Each on its
    # own: one failing does not keep the other waiting (the A2A calls' sweep,
    # `ApprovalDesk.sweep_consents`, would still find theirs).
    for waiting in (app.flows.connected, app.approvals.connected):
        try:
            await waiting(pending.upstream, user.subject, user.issuer)
        except Exception:
            logger.exception("waking what waited for %s's connection", pending.upstream)
    response = redirect(f"{PREFIX}/connections?connected={pending.upstream}")
    console.clear_cookie(response, _cookie(request))
    return response


@router.get("/{server_id}/connect")
async def connect(
    request: Request,
    server_id: Annotated[str, Path(pattern=SERVER_ID)],
    scope: Annotated[str | None, Query(max_length=1000)] = None,
) -> Response:
    """To the upstream's authorization server. A GET (a link an MCP client
    or an A2A caller is handed): it changes nothing here but this browser's
    cookie, and consent is given at the authorization server. ``scope``:
    asked for besides the upstream's own -- a step-up link names the
    scopes the user had and the ones the upstream said were missing."""
    if scope is not None:
        try:
            scope = " ".join(sorted(parse_scopes(scope))) or None
        except ScopeSyntaxError as exc:
            raise ConsoleError(400, "Not a scope", str(exc)) from None
    user = await current_user(request)
    console = console_of(request)
    app = state_of(request)
    try:
        upstream = await _upstream(request, server_id)
    except KeySealError as exc:
        raise ConsoleError(
            500, "This upstream's client secret cannot be opened", str(exc)
        ) from None
    if upstream is None:
        raise ConsoleError(404, "No such server to connect to", server_id)
    session = request.cookies.get(console.session_cookie) or ""
    try:
        target, pending = await app.connections.begin(
            upstream,
            subject=user.subject,
            issuer=user.issuer,
            session=session_binding(session),
            scope=scope,
        )
    except ConnectFailed as failed:
        raise ConsoleError(502, "Connecting failed", str(failed)) from None
    response = redirect(target)
    console.set_cookie(response, _cookie(request), _seal(request).seal(pending), CONNECT_SECONDS)
    return response


@router.post("/{connection_id}/disconnect")
async def disconnect(
    request: Request, connection_id: Annotated[str, Path(pattern=connections_api.CONNECTION_ID)]
) -> Response:
    user = await current_user(request)
    await posted(request, user.csrf)
    found = await state_of(request).connections.vault.by_id(connection_id)
    await connections_api.delete_connection(request, user.principal(), connection_id)
    return redirect(f"{PREFIX}/connections?removed={found.upstream if found else ''}")

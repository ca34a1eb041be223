"""Connected accounts: connecting a user's account at an upstream, and the
user's own token for each call to it.

`Connections.begin()` and `.complete()` are the two halves of the
authorization code flow around the browser's visit to the upstream's
authorization server (`gateway.connections.oauth`); the client is chosen in
the MCP specification's order (`gateway.connections.clients`): one
registered out of band (the server's `client_id`), the gateway's Client ID
Metadata Document where the server supports it and the gateway has an
https public URL, else one registered dynamically (RFC 7591) and kept for
every user of that upstream.

`Connections.connection_for()` is the credential of one call: the user's own
access token, refreshed shortly before it expires (one refresh in flight
per connection: in this process a lock, across replicas the vault's claim).
A user without a working connection gets `ConnectionRequired` -- nothing is
sent, and no other credential stands in for theirs.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import replace
from urllib.parse import quote, urlencode

import httpx2
from mcp.client.auth.exceptions import OAuthFlowError
from mcp.client.auth.utils import (
    union_scopes,
    validate_authorization_response_iss,
)
from mcp.shared.auth import OAuthMetadata

from adapters.mcp_http import Refused
from gateway.connections import oauth
from gateway.connections.clients import OAuthClients
from gateway.connections.connection import Connection, TokenGrant
from gateway.connections.errors import ConnectFailed, ConnectionRequired, ScopeRequired
from gateway.connections.pending import Pending
from gateway.connections.upstream import (
    Upstream,
    issued_for,
    kept_to_offered,
    pkce_challenge,
)
from gateway.connections.vault import Vault

logger = logging.getLogger(__name__)
_REFRESH_MARGIN_SECONDS = 60.0  # refresh this long before the access token expires
_REFRESH_SECONDS = 20.0  # a refresh's own limit: shorter than the vault's claim
_WAIT_FOR_OTHER_REFRESH_SECONDS = 25.0


def _seen(connection: Connection | None) -> tuple[str, int] | None:
    """`ConnectionRequired.seen`: the connection a call could not use."""
    return None if connection is None else (connection.id, connection.version)


class Connections:
    def __init__(
        self,
        vault: Vault,
        http: httpx2.AsyncClient,
        public_url: str,
        *,
        allow_http: bool = False,
    ) -> None:
        """``allow_http``: authorization servers on plain http (``--dev`` only)."""
        self.vault = vault
        self._http = http
        self._public_url = public_url.rstrip("/")
        # Told what happens to a connection outside a call or a user's action
        # (a refresh that failed): (event, connection, outcome, detail). The
        # app audits it (`gateway.federation.startup`).
        self.on_event: Callable[[str, Connection, str, str], Awaitable[None]] | None = None
        self.clients = OAuthClients(vault, http, self._public_url, allow_http=allow_http)
        self._locks: dict[str, asyncio.Lock] = {}

    def connect_url(self, upstream: str, scope: str | None = None) -> str:
        url = f"{self._public_url}/ui/connections/{quote(upstream, safe='')}/connect"
        return url + "?" + urlencode({"scope": scope}) if scope else url

    # --- Connecting -----------------------------------------------------------

    async def begin(
        self,
        upstream: Upstream,
        *,
        subject: str,
        issuer: str,
        session: str,
        scope: str | None = None,
    ) -> tuple[str, Pending]:
        """(where to send the browser, what to keep until it comes back).
        ``scope``: asked for besides the upstream's own (a step-up)."""
        found = await self.clients.discover(upstream)
        client = await self.clients.chosen(upstream, found, may_register=True)
        # A link's scope -- anyone may hand a user a link -- is kept to the
        # scopes the server offers (`scopes_supported`) where it lists them:
        # a scope it does not offer is dropped, not asked for. The upstream's
        # own scope (an admin's) is asked for as it is.
        scope = union_scopes(upstream.scope or found.scope, kept_to_offered(scope, found))
        verifier = secrets.token_urlsafe(64)  # 86 characters, RFC 7636 §4.1: 43-128
        state = secrets.token_urlsafe(32)
        pending = Pending(
            state=state,
            verifier=verifier,
            upstream=upstream.id,
            session=session,
            subject=subject,
            issuer=issuer,
            authorization_server=found.issuer,
            token_endpoint=str(found.metadata.token_endpoint),
            revocation_endpoint=(
                str(found.metadata.revocation_endpoint)
                if found.metadata.revocation_endpoint
                else None
            ),
            resource=found.resource,
            scope=scope,
            client_id=client.client_id,
            iss_required=bool(found.metadata.authorization_response_iss_parameter_supported),
        )
        url = oauth.authorization_url(
            found,
            client,
            redirect_uri=self.clients.redirect_uri(upstream.id),
            state=state,
            challenge=pkce_challenge(verifier),
            scope=scope,
        )
        return url, pending

    async def complete(
        self, upstream: Upstream, pending: Pending, *, code: str, iss: str | None
    ) -> Connection:
        """The browser came back with ``code`` (``state`` already matched)."""
        # RFC 9207 §2.4: the response's issuer is the server the request went to.
        expected = OAuthMetadata.model_validate(
            {
                "issuer": pending.authorization_server,
                "authorization_endpoint": pending.token_endpoint,
                "token_endpoint": pending.token_endpoint,
                "authorization_response_iss_parameter_supported": pending.iss_required,
            }
        )
        try:
            validate_authorization_response_iss(iss, expected)
        except OAuthFlowError:
            raise ConnectFailed(
                "the answer did not come from the authorization server the request went to "
                "(RFC 9207 iss)"
            ) from None
        client = await self.clients.resolved(upstream, pending)
        token = await oauth.exchange_code(
            self._http,
            token_endpoint=pending.token_endpoint,
            client=client,
            code=code,
            verifier=pending.verifier,
            redirect_uri=self.clients.redirect_uri(pending.upstream),
            resource=pending.resource,
        )
        if token.scope is None:  # RFC 6749 §5.1: omitted means as requested
            token = token.model_copy(update={"scope": pending.scope})
        saved, replaced = await self.vault.save(
            pending.subject,
            pending.issuer,
            pending.upstream,
            TokenGrant(
                token,
                pending.authorization_server,
                pending.token_endpoint,
                pending.revocation_endpoint,
                pending.resource,
                client,
            ),
        )
        if replaced is not None:  # connected again: the old grant goes at the server too
            await self.clients.revoke(replaced)
        return saved

    # --- Calling --------------------------------------------------------------

    async def connection_for(self, upstream: Upstream, *, subject: str, issuer: str) -> Connection:
        """The user's connection to ``upstream``, its access token fresh."""
        connection = await self.vault.get(subject, issuer, upstream.id)
        if connection is None or not issued_for(connection, upstream):
            raise ConnectionRequired(
                upstream.id,
                self.connect_url(upstream.id),
                "your account there is not connected",
                _seen(connection),
            )
        now = self.vault.now()
        if connection.fresh(now, _REFRESH_MARGIN_SECONDS):
            return connection
        lock = self._locks.setdefault(connection.id, asyncio.Lock())
        async with lock:
            return await self._refreshed(upstream, connection)

    async def _refreshed(self, upstream: Upstream, seen: Connection) -> Connection:
        current = await self.vault.by_id(seen.id)
        if current is None:
            raise ConnectionRequired(
                upstream.id, self.connect_url(upstream.id), "your connection was removed"
            )
        if current.fresh(self.vault.now(), _REFRESH_MARGIN_SECONDS):
            return current  # refreshed meanwhile, here or on another replica
        if current.refresh_token is None:
            return self._still_valid(upstream, current, "your connection expired")
        # Shielded from the claim on: a caller going away must neither leave
        # the claim held with no refresh under way (every other caller would
        # wait it out) nor drop tokens the server has already rotated (the
        # old refresh token is dead from then on).
        refreshing = asyncio.ensure_future(self._claimed_refresh(current))
        claimed, written = await asyncio.shield(refreshing)
        if not claimed:
            return await self._after_other_refresh(upstream, current)
        if written is None:
            raise ConnectionRequired(
                upstream.id, self.connect_url(upstream.id), "your connection was removed"
            )
        if isinstance(written, ConnectFailed):
            if written.refused:
                raise ConnectionRequired(
                    upstream.id,
                    self.connect_url(upstream.id),
                    "the authorization server no longer accepts your connection",
                )
            return self._still_valid(upstream, current, f"refreshing failed: {written}")
        return written

    async def _claimed_refresh(
        self, current: Connection
    ) -> tuple[bool, Connection | ConnectFailed | None]:
        """(whether this replica took the claim, `_refresh`'s outcome if it did)."""
        if not await self.vault.claim_refresh(current):
            return False, None
        return True, await self._refresh(current)

    async def _refresh(self, current: Connection) -> Connection | ConnectFailed | None:
        """Refresh a claimed connection: the new one; the failure (a refused
        grant deletes the connection, at the version refreshed); None if it
        was removed meanwhile."""
        assert current.refresh_token is not None
        try:
            async with asyncio.timeout(_REFRESH_SECONDS):
                token = await oauth.refresh(
                    self._http,
                    token_endpoint=current.token_endpoint,
                    client=current.client,
                    refresh_token=current.refresh_token,
                    resource=current.resource,
                )
        except (ConnectFailed, TimeoutError) as exc:
            failed = exc if isinstance(exc, ConnectFailed) else ConnectFailed("timed out")
            if failed.refused:
                await self.vault.delete(current.id, version=current.version)
            else:
                await self.vault.release(current)
            outcome = "ended" if failed.refused else "kept"
            await self._told("connection.refresh_failed", current, outcome, str(failed))
            return failed
        written = await self.vault.refreshed(
            current,
            TokenGrant(
                token,
                current.authorization_server,
                current.token_endpoint,
                current.revocation_endpoint,
                current.resource,
                current.client,
            ),
        )
        if written is None:
            # Removed while the refresh was under way (the server removed,
            # the user disconnected). Whoever removed it revoked the tokens
            # it read, which the refresh has just replaced: the new ones
            # belong to nobody and would outlive the connection at the
            # authorization server unless revoked here (RFC 7009).
            await self.clients.revoke(
                replace(
                    current,
                    access_token=token.access_token,
                    refresh_token=token.refresh_token or current.refresh_token,
                )
            )
        return written

    async def _after_other_refresh(self, upstream: Upstream, seen: Connection) -> Connection:
        """Another replica refreshes: wait for the version it writes."""
        deadline = asyncio.get_running_loop().time() + _WAIT_FOR_OTHER_REFRESH_SECONDS
        while asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.1)
            current = await self.vault.by_id(seen.id)
            if current is None:
                raise ConnectionRequired(
                    upstream.id, self.connect_url(upstream.id), "your connection was removed"
                )
            if current.version != seen.version:
                return current
        return self._still_valid(upstream, seen, "a refresh elsewhere did not finish")

    def _still_valid(self, upstream: Upstream, connection: Connection, reason: str) -> Connection:
        """The current token while it has not expired yet; else the user must connect again."""
        if connection.fresh(self.vault.now(), 0):
            return connection
        raise ConnectionRequired(
            upstream.id, self.connect_url(upstream.id), reason, _seen(connection)
        )

    def step_up(
        self, upstream: Upstream, used: Connection, challenged: str | None
    ) -> ScopeRequired:
        """The upstream answered 403 ``insufficient_scope`` to the user's token
        (MCP authorization 2025-11-25, "Scope Challenge Handling"): the user is
        asked again for what they granted plus what the upstream named; the
        connection stays as it is until they do."""
        scope = union_scopes(used.scope, challenged) or ""
        missing = sorted(set(scope.split()) - set((used.scope or "").split()))
        reason = (
            f"the server needs scope {' '.join(missing)}, which your connection was not granted"
            if missing
            else "the server refused your connection's scopes"
        )
        kept = f"{used.id}:{used.version}"
        return ScopeRequired(
            upstream.id, self.connect_url(upstream.id, scope), reason, scope, kept, _seen(used)
        )

    async def answered(
        self, upstream: Upstream, used: Connection, refusal: Refused
    ) -> ConnectionRequired:
        """The upstream refused the user's own token: a 403 ``insufficient_scope``
        asks for the missing scope (`step_up`), anything else ends the
        connection (`refused`)."""
        if refusal.status == 403:
            return self.step_up(upstream, used, refusal.scope)
        return await self.refused(upstream, used)

    async def refused(self, upstream: Upstream, used: Connection) -> ConnectionRequired:
        """The server answered 401 to the token of ``used``: it no longer
        honours this connection (revoked there). It ends here too, at the
        version that was used -- not one made again or refreshed since -- and
        the user connects again."""
        if await self.vault.delete(used.id, version=used.version) is not None:
            await self._told(
                "connection.refused_upstream", used, "ended", "the server answered 401"
            )
        return ConnectionRequired(
            upstream.id,
            self.connect_url(upstream.id),
            "the server no longer accepts your connection",
            _seen(used),
        )

    async def _told(self, event: str, connection: Connection, outcome: str, detail: str) -> None:
        """Tell ``on_event``; its failure (the audit's database down) is logged,
        not put in place of what happened to the connection."""
        if self.on_event is None:
            return
        try:
            await self.on_event(event, connection, outcome, detail)
        except Exception:
            logger.exception("connection %s: %s could not be recorded", connection.id, event)

    # --- Disconnecting --------------------------------------------------------

    async def disconnect(self, connection_id: str) -> tuple[Connection, bool] | None:
        """Remove a connection and revoke its tokens where the server offers it:
        (what was removed, whether the server confirmed the revocation)."""
        gone = await self.vault.delete(connection_id)
        if gone is None:
            return None
        return gone, await self.clients.revoke(gone)

    async def forget_upstream(self, upstream: str) -> None:
        """The upstream was removed: every user's connection to it is
        forgotten, then revoked at its authorization server (after the
        upstream is gone, no connection to it can be completed meanwhile)."""
        gone = await self.vault.of_upstream(upstream)
        await self.vault.forget_upstream(upstream)
        await self.revoke_all(gone)

    async def revoke_all(self, gone: list[Connection]) -> None:
        """Revoke connections already forgotten (`forget_upstream`)."""
        for connection in gone:
            await self.clients.revoke(connection)

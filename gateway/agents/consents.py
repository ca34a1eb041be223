"""A2A agents whose users connect their own accounts (`user_oauth`).

An agent is one when its card asks for a token from its own authorization
server on every call (`policies.card_oauth`). Each call to it
then carries the calling user's own token from their connection
(`gateway.connections`) -- never the gateway's minted token, never another
user's. The token is got in the core's `before` step (`AgentCalls`), so
a user without a connection is refused before anything is sent, and the
refusal is recorded.

A message from a user who has not connected yet is held, not refused
(A2A 1.0 §7.3.3, "In-Task Authorization": the task waits in
``TASK_STATE_AUTH_REQUIRED`` while the client gets the user's consent out of
band, then goes on): `gateway.agents.approval_handler` answers with a task in that
state whose status message carries the connect link, and a row here
(`consent_waits`) says whose connection releases it. When that user
connects their account at the agent (the console's callback), every call
of theirs waiting for it is released as an approved call is
(`ApprovalDesk.release`): decided again and sent at that moment, with the
new connection's token -- the task goes on.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from a2a.types import AgentCard
from a2a.utils.errors import A2AError
from google.protobuf.json_format import ParseDict
from sqlalchemy import and_, delete, insert, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from adapters.a2a import NoUsableInterface, choose_interface
from adapters.mcp_http import Refused, refusal_of
from gateway.agents.oauth_clients import ConfiguredClient
from gateway.connections.connection import Connection
from gateway.connections.errors import ConnectionRequired
from gateway.connections.service import Connections
from gateway.connections.upstream import Upstream
from gateway.delegation.approvals import PENDING
from gateway.delegation.permits import Grant
from gateway.storage.periodic import Pace
from gateway.storage.tables import approvals, upstream_connections
from gateway.storage.tables import consent_waits as table
from policies.card_oauth import card_authorization
from registry.vendor_cards import VENDOR_KINDS, gateway_run_kind, takes_users_own_token

logger = logging.getLogger(__name__)
RELEASED_BY = "connection"
_KEPT = 1024  # parsed cards kept, by (agent, card digest)


def agent_upstream(agent_id: str, card: Mapping[str, Any]) -> Upstream | None:
    """The agent as its users connect to it; None unless its card asks for
    each user's own token. Its URL is the interface the gateway calls
    (`choose_interface`): the resource its tokens are asked for (RFC 8707),
    and the only URL they are ever sent to."""
    authorization = card_authorization(card)
    if authorization is None:
        return None
    try:
        endpoint = choose_interface(ParseDict(dict(card), AgentCard(), ignore_unknown_fields=True))
    except NoUsableInterface:
        return None
    # A gRPC interface is named host:port; its tokens' resource must be an
    # absolute URI (RFC 8707 §2), as the TLS channel it goes over.
    url = endpoint.url if "://" in endpoint.url else "https://" + endpoint.url
    return Upstream(id=agent_id, url=url, scope=authorization.scope, authorization=authorization)


VendorUpstreams = Callable[[str], Awaitable[Upstream | None]]
ConfiguredClients = Callable[[str], Awaitable[ConfiguredClient | None]]


async def connectable(
    agent_id: str,
    card: Mapping[str, Any],
    vendors: VendorUpstreams | None,
    clients: ConfiguredClients | None = None,
) -> Upstream | None:
    """The agent as its users connect to it, whatever its kind: an A2A agent
    by its card (`agent_upstream`), with the client an admin registered for
    it out of band (``clients``: `AgentOAuthClients.get`) if any; a
    gateway-run vendor agent by its registration (``vendors``:
    `VendorAgents.user_oauth_upstream`; its gateway-written card does not
    say it); None for an agent that takes the gateway's token."""
    if gateway_run_kind(card) in VENDOR_KINDS:
        if not takes_users_own_token(card) or vendors is None:
            return None
        return await vendors(agent_id)
    upstream = agent_upstream(agent_id, card)
    configured = await clients(agent_id) if upstream is not None and clients else None
    if upstream is None or configured is None:
        return upstream
    return replace(upstream, client_id=configured.client_id, client_secret=configured.client_secret)


# How often the held calls are swept (`ApprovalDesk.sweep_consents`) while
# this replica knows of some, and when it knows of none.
SWEEP_SECONDS, IDLE_SWEEP_SECONDS = 5.0, 30.0


class AgentConsents:
    """The user's own token for a call to a `user_oauth` agent, and the calls
    held until a user connects."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        # Set by the app once the connections exist (`gateway.app`); None: no
        # agent is called with a user's own token (every call is refused).
        self.connections: Connections | None = None
        # Gateway-run vendor agents registered with `user_oauth`, by id (set
        # by the A2A start-up: `VendorAgents.user_oauth_upstream`).
        self.vendors: VendorUpstreams | None = None
        self._upstreams: dict[tuple[str, str], Upstream | None] = {}
        self.pace = Pace(SWEEP_SECONDS, IDLE_SWEEP_SECONDS)

    def upstream(self, grant: Grant) -> Upstream | None:
        key = (grant.agent.id, grant.agent.card_digest)
        if key not in self._upstreams:
            if len(self._upstreams) >= _KEPT:
                self._upstreams.clear()
            self._upstreams[key] = agent_upstream(grant.agent.id, grant.card)
        return self._upstreams[key]

    async def upstream_of(self, agent_id: str, card: Mapping[str, Any]) -> Upstream | None:
        """`connectable`, with this gateway's vendor agents."""
        return await connectable(agent_id, card, self.vendors)

    def _required(self, upstream: Upstream) -> ConnectionRequired:
        return ConnectionRequired(
            upstream.id, "", "connected accounts are not available on this gateway"
        )

    async def connection(self, grant: Grant, upstream: Upstream) -> Connection:
        """The caller's connection to the agent, its token fresh; raises
        `ConnectionRequired`."""
        if self.connections is None:
            raise self._required(upstream)
        caller = grant.caller
        return await self.connections.connection_for(
            upstream, subject=caller.subject, issuer=caller.issuer
        )

    async def needed(self, grant: Grant) -> ConnectionRequired | Connection | None:
        """Why a message to the agent must wait for its user's consent; else
        the connection it goes with (read once: the call takes it from the
        admission), or None for an agent that takes the gateway's token."""
        if gateway_run_kind(grant.card) in VENDOR_KINDS:
            upstream = await self.upstream_of(grant.agent.id, grant.card)
        else:
            upstream = self.upstream(grant)
        if upstream is None:
            return None
        try:
            return await self.connection(grant, upstream)
        except ConnectionRequired as needed:
            return needed

    async def refused(
        self, upstream: Upstream, used: Connection, refusal: Refused
    ) -> ConnectionRequired:
        """The agent refused the user's own token (`Connections.answered`)."""
        if self.connections is None:
            return self._required(upstream)
        return await self.connections.answered(upstream, used, refusal)

    # --- Calls waiting for a connection -----------------------------------------

    async def hold(
        self,
        approval_id: str,
        upstream: str,
        subject: str,
        issuer: str,
        conn: AsyncConnection,
        *,
        refused: str | None = None,
    ) -> None:
        """In the held call's own transaction (`gateway.agents.approval_handler`).
        ``refused``: the connection ("id:version") that lacked a scope (a
        step-up): that one does not release the call, another does."""
        await conn.execute(
            insert(table).values(
                approval_id=approval_id,
                upstream=upstream,
                owner_subject=subject,
                owner_issuer=issuer,
                refused_connection=refused,
                created_at=datetime.now(UTC),
            )
        )
        self.pace.kept()

    async def waiting(self, upstream: str, subject: str, issuer: str) -> list[str]:
        """The approvals of the user's calls waiting for this connection."""
        async with self._engine.connect() as conn:
            rows = await conn.execute(
                select(table.c.approval_id)
                .where(
                    table.c.upstream == upstream,
                    table.c.owner_issuer == issuer,
                    table.c.owner_subject == subject,
                )
                .order_by(table.c.created_at)
            )
            return [row.approval_id for row in rows]

    async def is_waiting(self, approval_id: str) -> bool:
        """A call still pending, for its user's consent."""
        async with self._engine.connect() as conn:
            found = await conn.scalar(
                select(table.c.approval_id)
                .join(approvals, approvals.c.id == table.c.approval_id)
                .where(table.c.approval_id == approval_id, approvals.c.state == PENDING)
            )
        return found is not None

    async def forget(self, approval_id: str, conn: AsyncConnection) -> None:
        """In the transaction of the call's decision, whatever it is."""
        await conn.execute(delete(table).where(table.c.approval_id == approval_id))

    async def drop(self, approval_id: str) -> None:
        async with self._engine.begin() as conn:
            await self.forget(approval_id, conn)

    async def due(self, limit: int = 200) -> list[Due]:
        """The waits, each with its call's state, whether its user is connected
        now, and when its requester's token expires (oldest first)."""
        connections = upstream_connections
        joined = table.join(approvals, approvals.c.id == table.c.approval_id).outerjoin(
            connections,
            and_(
                connections.c.upstream == table.c.upstream,
                connections.c.issuer == table.c.owner_issuer,
                connections.c.subject == table.c.owner_subject,
            ),
        )
        query = (
            select(
                table.c.approval_id,
                approvals.c.state,
                approvals.c.caller,
                connections.c.id,
                connections.c.version,
                table.c.refused_connection,
            )
            .select_from(joined)
            .order_by(table.c.created_at)
            .limit(limit)
        )
        async with self._engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        self.pace.looked(bool(rows))
        return [
            Due(
                approval_id,
                state,
                # Connected, and not with the very connection that lacked a scope.
                found is not None and f"{found}:{version}" != refused,
                _expiry(caller),
            )
            for approval_id, state, caller, found, version, refused in rows
        ]


@dataclass(frozen=True)
class Due:
    approval_id: str
    state: str
    connected: bool
    expires_at: datetime | None


def _expiry(caller: Any) -> datetime | None:
    """When the held call's requester's token expires (the stored caller's
    `not_after`, epoch seconds: `gateway.delegation.approvals`)."""
    value = caller.get("not_after") if isinstance(caller, Mapping) else None
    if not isinstance(value, int | float) or isinstance(value, bool):
        return None
    return datetime.fromtimestamp(value, UTC)


class CallToken:
    """The bearer token one call to an agent goes with: the one the gateway
    minted for it, or -- for a `user_oauth` agent -- the caller's own from
    their connection, got in the core's `before` step (`Sending.before`)."""

    def __init__(
        self,
        consents: AgentConsents | None,
        grant: Grant,
        read: Connection | None = None,
        *,
        upstream: Upstream | None = None,
    ) -> None:
        """``read``: the user's connection as the admission read it, fresh.
        ``upstream``: the agent as its users connect to it, where its card
        does not say it (a gateway-run vendor agent: `AgentConsents.upstream_of`)."""
        self._consents = consents
        self._grant = grant
        if upstream is None and consents is not None:
            upstream = consents.upstream(grant)
        self.upstream = upstream
        # The user's own, once `check` has got it; never the minted one in its place.
        self.token = grant.token.token if upstream is None else ""
        self._used: Connection | None = None
        self._read = read
        self._refused: Refused | None = None

    def attempted(self, failure: BaseException) -> None:
        """Note a failed attempt: did the agent refuse the user's token?"""
        response = _response_of(failure)
        if response is not None:
            self.answered(response.status_code, response.headers.get("WWW-Authenticate"))

    def answered(self, status: int, www_authenticate: str | None = None) -> None:
        if self._used is not None:
            self._refused = refusal_of(status, www_authenticate) or self._refused

    async def check(self) -> None:
        if self.upstream is None:
            return
        assert self._consents is not None
        found, self._read = self._read, None  # an attempt after a refusal reads again
        if found is None or found.upstream != self.upstream.id:
            found = await self._consents.connection(self._grant, self.upstream)
        assert self._consents.connections is not None
        await self._consents.connections.vault.used(found)
        self._used, self.token = found, found.access_token

    def went_with(self) -> str:
        """For the call's records: the connection (never its token)."""
        used = self._used
        if used is None:
            return ""
        return f"connection {used.id} (scopes {used.scope or '-'}, token {used.token_id})"

    async def refused(self) -> ConnectionRequired | None:
        """If the agent refused the user's own token: 401 (RFC 6750 §3.1,
        revoked there) ends the connection and the user connects again; 403
        ``insufficient_scope`` asks them for the missing scope (a step-up)."""
        refused, used = self._refused, self._used
        if refused is None or used is None or self._consents is None:
            return None
        assert self.upstream is not None
        return await self._consents.refused(self.upstream, used, refused)

    @property
    def before(self) -> Callable[[], Awaitable[None]] | None:
        """The core's `before` step (`Sending.before`), for an agent that takes
        its users' own tokens; none otherwise (the minted token needs none)."""
        return self.check if self.upstream is not None else None

    @contextlib.asynccontextmanager
    async def refusals(self) -> AsyncIterator[None]:
        """Around the core's send: an A2A error that was the agent refusing the
        user's own token is raised as what the user must do about it."""
        try:
            yield
        except A2AError:
            needed = await self.refused()
            if needed is not None:
                raise needed from None
            raise


def _response_of(failure: BaseException) -> Any:
    """The HTTP answer a failure came from, wherever in the chain of causes
    the transport put it (the a2a-sdk client raises its own error from
    httpx's `HTTPStatusError`, which holds the response)."""
    seen: BaseException | None = failure
    for _ in range(5):
        if seen is None:
            return None
        response = getattr(seen, "response", None)
        if isinstance(getattr(response, "status_code", None), int):
            return response
        seen = seen.__cause__ or seen.__context__
    return None

"""Connected accounts, one piece at a time: `Connections` over a real migrated
database (SQLite) and a scripted authorization server and MCP server (an httpx
`MockTransport`; the end-to-end test uses the SDK's own, over HTTP).

What is held here: discovery refuses what MCP authorization says to refuse;
only `invalid_grant` ends a connection; two "replicas" refresh one connection
once, and both get the rotated token; a caller cancelled mid-refresh does not
lose the rotated tokens; tokens never go to a server at another URL; the
pending cookie opens only unchanged and in time.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import httpx2
import pytest
from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.connections.connection import Connection
from gateway.connections.errors import ConnectFailed, ConnectionRequired
from gateway.connections.pending import Pending, PendingSeal
from gateway.connections.service import Connections
from gateway.connections.upstream import Upstream
from gateway.connections.vault import Vault
from gateway.storage.db import migrated
from registry.tables import mcp_servers
from tests.support.waiting import wait_for_async, wait_for_awaited

AS = "https://as.example"
MCP = "https://mcp.example/mcp"
SECRET = "a-sealing-secret-of-at-least-32-characters!"
UPSTREAM = Upstream(id="notes", url=MCP, client_id="gw", client_secret="s3")


class Vendor:
    """A scripted authorization server and the MCP server it protects."""

    def __init__(self) -> None:
        self.metadata: dict[str, Any] = {
            "issuer": AS,
            "authorization_endpoint": AS + "/authorize",
            "token_endpoint": AS + "/token",
            "revocation_endpoint": AS + "/revoke",
            "code_challenge_methods_supported": ["S256"],
        }
        self.resource = MCP
        self.refreshes: list[str] = []
        self.revoked: list[str] = []
        self.token_error: str | None = None
        self.token_gate: asyncio.Event | None = None
        self.issued = 0
        self.started = 0  # token requests received (before any gate)

    async def handle(self, request: httpx2.Request) -> httpx2.Response:
        url = str(request.url)
        if url == MCP:
            return httpx2.Response(
                401,
                headers={"WWW-Authenticate": 'Bearer resource_metadata="https://mcp.example/prm"'},
            )
        if url == "https://mcp.example/prm":
            return httpx2.Response(
                200, json={"resource": self.resource, "authorization_servers": [AS]}
            )
        if url == AS + "/.well-known/oauth-authorization-server":
            return httpx2.Response(200, json=self.metadata)
        if url == AS + "/revoke":  # RFC 7009
            self.revoked.append(parse_qs(request.content.decode())["token"][0])
            return httpx2.Response(200)
        if url == AS + "/token":
            form = {k: v[0] for k, v in parse_qs(request.content.decode()).items()}
            self.started += 1
            if self.token_gate is not None:
                await self.token_gate.wait()
            if self.token_error is not None:
                return httpx2.Response(400, json={"error": self.token_error})
            refreshing = form.get("grant_type") == "refresh_token"
            if refreshing:
                self.refreshes.append(form["refresh_token"])
            self.issued += 1
            return httpx2.Response(
                200,
                json={
                    "access_token": f"access-{self.issued}",
                    "refresh_token": f"refresh-{self.issued}",
                    "token_type": "bearer",
                    # The first token is within the refresh margin (its first use
                    # refreshes it); a refreshed one lives long, so a replica that
                    # reads the row only after another's refresh does not refresh
                    # it again.
                    "expires_in": 3600 if refreshing else 30,
                },
            )
        return httpx2.Response(404)


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    async with migrated(f"sqlite+aiosqlite:///{tmp_path / 'db.sqlite'}", SECRET) as made:
        now = datetime.now(UTC)
        async with made.begin() as conn:
            await conn.execute(
                insert(mcp_servers).values(
                    id="notes",
                    name="notes",
                    transport="http",
                    url=MCP,
                    resource=MCP,
                    credential={"type": "user_oauth"},
                    registered_by="admin",
                    trusted_registrant=True,
                    health_status="unknown",
                    registered_at=now,
                    updated_at=now,
                )
            )
        yield made


def connections_of(engine: AsyncEngine, vendor: Vendor) -> Connections:
    http = httpx2.AsyncClient(transport=httpx2.MockTransport(vendor.handle))
    return Connections(Vault(engine, SECRET), http, "https://gw.example")


async def connected(connections: Connections, user: str = "alice") -> None:
    """Alice connects: begin, then the callback with a code."""
    url, pending = await connections.begin(UPSTREAM, subject=user, issuer="idp", session="s")
    asked = parse_qs(url.split("?", 1)[1])
    assert asked["code_challenge_method"] == ["S256"]
    assert asked["redirect_uri"] == ["https://gw.example/ui/connections/notes/callback"]
    await connections.complete(UPSTREAM, pending, code="the-code", iss=AS)


async def token_for(connections: Connections, upstream: Upstream, issuer: str = "idp") -> str:
    found = await connections.connection_for(upstream, subject="alice", issuer=issuer)
    return found.access_token


async def test_two_replicas_refresh_a_connection_once(engine: AsyncEngine) -> None:
    vendor = Vendor()
    one, two = connections_of(engine, vendor), connections_of(engine, vendor)
    await connected(one)
    vendor.token_gate = asyncio.Event()
    first = asyncio.create_task(token_for(one, UPSTREAM))
    second = asyncio.create_task(token_for(two, UPSTREAM))
    await wait_for_async(lambda: vendor.started == 2)  # the first refresh is at the server
    vendor.token_gate.set()
    tokens = await asyncio.gather(first, second)
    assert vendor.refreshes == ["refresh-1"], "the refresh token was sent once"
    assert list(tokens) == ["access-2", "access-2"]


async def test_a_caller_cancelled_mid_refresh_keeps_the_rotated_tokens(
    engine: AsyncEngine,
) -> None:
    vendor = Vendor()
    connections = connections_of(engine, vendor)
    await connected(connections)
    vendor.token_gate = asyncio.Event()
    call = asyncio.create_task(token_for(connections, UPSTREAM))
    await wait_for_async(lambda: vendor.started == 2)  # the refresh is at the server
    call.cancel()
    vendor.token_gate.set()
    with pytest.raises(asyncio.CancelledError):
        await call
    await wait_for_async(lambda: vendor.issued == 2)
    kept = await _eventually(connections.vault, "alice")
    assert kept.refresh_token == "refresh-2", "the rotated refresh token was kept"


async def test_a_caller_cancelled_as_it_claims_the_refresh_leaves_no_claim_held(
    engine: AsyncEngine,
) -> None:
    """Cancelled after the claim is written but before it returns (a server's
    session restarted as its registrant connects): the refresh still runs,
    so the next caller gets the new token at once instead of waiting out a
    claim nobody works on, then being handed the old one."""
    vendor = Vendor()
    connections = connections_of(engine, vendor)
    await connected(connections)
    vault = connections.vault
    claim = vault.claim_refresh
    claimed, go_on = asyncio.Event(), asyncio.Event()

    async def held_claim(connection: Connection) -> bool:
        taken = await claim(connection)
        claimed.set()
        await go_on.wait()
        return taken

    vault.claim_refresh = held_claim  # type: ignore[method-assign]
    call = asyncio.create_task(token_for(connections, UPSTREAM))
    await claimed.wait()
    call.cancel()
    go_on.set()
    with pytest.raises(asyncio.CancelledError):
        await call
    vault.claim_refresh = claim  # type: ignore[method-assign]
    assert await token_for(connections, UPSTREAM) == "access-2"
    assert vendor.refreshes == ["refresh-1"], "refreshed once, by the cancelled caller's claim"


async def test_tokens_refreshed_for_a_connection_removed_meanwhile_are_revoked(
    engine: AsyncEngine,
) -> None:
    vendor = Vendor()
    connections = connections_of(engine, vendor)
    await connected(connections)
    vendor.token_gate = asyncio.Event()
    call = asyncio.create_task(token_for(connections, UPSTREAM))
    await wait_for_async(lambda: vendor.started == 2)  # the refresh is at the server
    await connections.forget_upstream("notes")  # the server removed meanwhile
    assert vendor.revoked == ["refresh-1"]  # what the removal read
    vendor.token_gate.set()
    with pytest.raises(ConnectionRequired):
        await call
    # The refresh's new tokens were written nowhere: revoked, not left valid.
    assert vendor.revoked == ["refresh-1", "refresh-2"]


async def test_only_invalid_grant_ends_a_connection(engine: AsyncEngine) -> None:
    vendor = Vendor()
    connections = connections_of(engine, vendor)
    await connected(connections)
    vendor.token_error = "invalid_client"  # the client's problem, not the user's grant
    token = await token_for(connections, UPSTREAM)
    assert token == "access-1"  # still alive: used while it lives
    assert await connections.vault.get("alice", "idp", "notes") is not None
    vendor.token_error = "invalid_grant"
    with pytest.raises(ConnectionRequired) as needed:
        await token_for(connections, UPSTREAM)
    assert needed.value.connect_url == "https://gw.example/ui/connections/notes/connect"
    assert await connections.vault.get("alice", "idp", "notes") is None


async def test_tokens_never_go_to_a_server_at_another_url(engine: AsyncEngine) -> None:
    connections = connections_of(engine, Vendor())
    await connected(connections)
    moved = Upstream(id="notes", url="https://elsewhere.example/mcp", client_id="gw")
    with pytest.raises(ConnectionRequired):
        await token_for(connections, moved)
    with pytest.raises(ConnectionRequired):  # and never another user's
        await token_for(connections, UPSTREAM, "another-idp")


@pytest.mark.parametrize(
    ("change", "refusal"),
    [
        (lambda v: v.metadata.pop("code_challenge_methods_supported"), "PKCE"),
        (lambda v: v.metadata.update(issuer="https://evil.example"), "issuer"),
        (lambda v: setattr(v, "resource", "https://other.example/mcp"), "another resource"),
        (lambda v: v.metadata.update(token_endpoint="http://as.example/token"), "not https"),
    ],
)
async def test_discovery_refuses(
    engine: AsyncEngine, change: Callable[[Vendor], Any], refusal: str
) -> None:
    vendor = Vendor()
    change(vendor)
    with pytest.raises(ConnectFailed, match=refusal):
        await connections_of(engine, vendor).begin(
            UPSTREAM, subject="alice", issuer="idp", session="s"
        )


async def test_a_callback_from_another_issuer_is_refused(engine: AsyncEngine) -> None:
    vendor = Vendor()
    vendor.metadata["authorization_response_iss_parameter_supported"] = True
    connections = connections_of(engine, vendor)
    _, pending = await connections.begin(UPSTREAM, subject="alice", issuer="idp", session="s")
    for iss in ("https://evil.example", None):
        with pytest.raises(ConnectFailed, match="RFC 9207"):
            await connections.complete(UPSTREAM, pending, code="c", iss=iss)
    assert vendor.issued == 0, "no code was exchanged"


def test_the_pending_cookie_opens_only_unchanged() -> None:
    seal = PendingSeal(SECRET)
    pending = Pending(
        state="st",
        verifier="v" * 43,
        upstream="notes",
        session="sess",
        subject="alice",
        issuer="idp",
        authorization_server=AS,
        token_endpoint=AS + "/token",
        revocation_endpoint=None,
        resource=MCP,
        scope=None,
        client_id="gw",
        iss_required=False,
    )
    cookie = seal.seal(pending)
    assert seal.open(cookie) == pending
    assert "v" * 43 not in cookie and "alice" not in cookie  # sealed, not signed only
    assert seal.open(cookie[:-4] + "AAAA") is None
    assert PendingSeal("another-secret-of-at-least-32-chars!!").open(cookie) is None
    assert seal.open(None) is None
    assert seal.open(json.dumps({"state": "st"})) is None


async def _eventually(vault: Vault, user: str) -> Any:
    async def refreshed() -> Any:
        found = await vault.get(user, "idp", "notes")
        return found if found is not None and found.version > 1 else None

    return await wait_for_awaited(refreshed, what="the refreshed connection was never written")

"""Connecting an account at an A2A agent: the authorization server its card
names (`discovery.discover_from_card`), checked as MCP authorization checks an
MCP server's -- over a scripted authorization server (httpx `MockTransport`;
the end-to-end test uses the `mcp` SDK's own over HTTP).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any
from urllib.parse import parse_qs

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.connections.errors import ConnectFailed
from gateway.connections.upstream import Upstream
from policies.card_oauth import CardAuthorization
from tests.gateway.connections.test_connections import AS, Vendor, connections_of, engine

__all__ = ["engine"]  # the database fixture, shared
AGENT = "https://agent.example/a2a/"
CARD = CardAuthorization(
    scheme="vendor",
    authorization_url=AS + "/authorize",
    token_url=AS + "/token",
    metadata_url=AS + "/.well-known/oauth-authorization-server",
    scope="crm:read",
)


def agent(card: CardAuthorization = CARD) -> Upstream:
    return Upstream(id="crm", url=AGENT, client_id="gw", scope=card.scope, authorization=card)


async def test_the_cards_authorization_server_is_asked_for_the_agent(engine: AsyncEngine) -> None:
    connections = connections_of(engine, Vendor())
    url, pending = await connections.begin(agent(), subject="alice", issuer="idp", session="s")
    assert url.startswith(AS + "/authorize?")
    asked = parse_qs(url.split("?", 1)[1])
    assert asked["resource"] == [AGENT]  # RFC 8707: the interface the gateway calls
    assert asked["scope"] == ["crm:read"]
    assert asked["code_challenge_method"] == ["S256"]
    assert asked["redirect_uri"] == ["https://gw.example/ui/connections/crm/callback"]
    assert (pending.authorization_server, pending.token_endpoint) == (AS, AS + "/token")


async def test_without_a_metadata_url_the_authorization_urls_origin_is_asked(
    engine: AsyncEngine,
) -> None:
    connections = connections_of(engine, Vendor())
    url, _ = await connections.begin(
        agent(replace(CARD, metadata_url=None)), subject="alice", issuer="idp", session="s"
    )
    assert url.startswith(AS + "/authorize?")


@pytest.mark.parametrize(
    ("card", "metadata", "refusal"),
    [
        # The card sends users to one server and codes to another.
        (replace(CARD, authorization_url="https://evil.example/authorize"), {}, "not the ones"),
        (replace(CARD, token_url="https://evil.example/token"), {}, "not the ones"),
        # Metadata served at one issuer's URL, claiming another issuer (RFC 8414 §3.3).
        (CARD, {"issuer": "https://evil.example"}, "issuer"),
        (replace(CARD, metadata_url=None), {"issuer": "https://evil.example"}, "issuer"),
        (CARD, {"code_challenge_methods_supported": ["plain"]}, "PKCE"),
        (CARD, {"token_endpoint": "http://as.example/token"}, "not https"),
        (replace(CARD, metadata_url=AS + "/nothing-here"), {}, "publishes no metadata"),
    ],
)
async def test_a_card_or_server_that_cannot_be_trusted_is_refused(
    engine: AsyncEngine, card: CardAuthorization, metadata: dict[str, Any], refusal: str
) -> None:
    vendor = Vendor()
    vendor.metadata.update(metadata)
    connections = connections_of(engine, vendor)
    with pytest.raises(ConnectFailed, match=refusal):
        await connections.begin(agent(card), subject="alice", issuer="idp", session="s")


# A vendor agent's authorization server named at its registration -------------------

LLM = "https://llm.example/v1"


def named(issuer: str = AS) -> Upstream:
    return Upstream(id="llm", url=LLM, client_id="gw", scope="chat", issuer=issuer)


async def test_a_named_authorization_server_is_asked_for_the_upstream(
    engine: AsyncEngine,
) -> None:
    connections = connections_of(engine, Vendor())
    url, pending = await connections.begin(named(), subject="alice", issuer="idp", session="s")
    assert url.startswith(AS + "/authorize?")
    asked = parse_qs(url.split("?", 1)[1])
    assert asked["resource"] == [LLM]  # RFC 8707: the API the gateway calls
    assert asked["scope"] == ["chat"]
    assert pending.authorization_server == AS


@pytest.mark.parametrize(
    ("issuer", "metadata", "refusal"),
    [
        # The metadata at the named issuer's URL claims another issuer (RFC 8414 §3.3).
        (AS, {"issuer": "https://evil.example"}, "issuer"),
        (AS, {"code_challenge_methods_supported": ["plain"]}, "PKCE"),
        (AS, {"authorization_endpoint": "http://as.example/authorize"}, "not https"),
        ("https://nothing.example", {}, "cannot be reached|publishes no metadata"),
    ],
)
async def test_a_named_authorization_server_that_cannot_be_trusted_is_refused(
    engine: AsyncEngine, issuer: str, metadata: dict[str, Any], refusal: str
) -> None:
    vendor = Vendor()
    vendor.metadata.update(metadata)
    connections = connections_of(engine, vendor)
    with pytest.raises(ConnectFailed, match=refusal):
        await connections.begin(named(issuer), subject="alice", issuer="idp", session="s")


async def test_a_named_authorization_server_on_http_is_refused_outside_dev(
    engine: AsyncEngine,
) -> None:
    connections = connections_of(engine, Vendor())
    with pytest.raises(ConnectFailed, match="not https"):
        await connections.begin(
            named("http://as.example"), subject="alice", issuer="idp", session="s"
        )

"""On behalf of the user at the company's identity provider (`idp_token_exchange`),
end to end: a provider serving RFC 8693 token exchange and the `jwt-bearer`
on-behalf-of grant over HTTP (`tests.support.enterprise_idp`), an MCP server
(the official SDK's) that trusts only that provider, a real gateway that
trusts the provider's users, and the official MCP client on `/mcp`.

What must hold: each user's call reaches the server with a token the
provider issued *for that user*; the user's own token goes to the provider
only, never upstream; a user of another identity provider, and a call that
carries no token of the user's (a flow step), are refused with nothing sent.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import mcp_types as types
import pytest

from gateway.connections.errors import OnBehalfUnavailable
from gateway.delegation.permits import Caller
from gateway.demo.vendor import Vendor
from gateway.settings import Settings
from tests.support.enterprise_idp import CLIENT, JWT_BEARER, TOKEN_EXCHANGE, EnterpriseIdp
from tests.support.gateway import Gateway, start_gateway
from tests.support.mcp_clients import mcp_client

POLICY = "agents: {}\n"


@pytest.fixture
def idp() -> Iterator[EnterpriseIdp]:
    with EnterpriseIdp() as running:
        yield running


@pytest.fixture
def gateway(tmp_path: Path, database_url: str | None, idp: EnterpriseIdp) -> Iterator[Gateway]:
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY)
    running = start_gateway(
        tmp_path / "data",
        database_url,
        mcp_reconcile_seconds=0.5,
        policy_file=policy,
        trusted_issuers=[{"issuer": idp.url, "jwks_url": idp.url + "/jwks"}],
    )
    try:
        yield running
    finally:
        running.server.stop()


def register(gateway: Gateway, idp: EnterpriseIdp, grant: str) -> dict[str, Any]:
    with gateway.client() as admin:
        registered = admin.post(
            "/mcp-servers",
            json={
                "name": "company",
                "url": idp.mcp_url,
                "credential": {
                    "type": "idp_token_exchange",
                    "issuer": idp.url,
                    "token_url": idp.url + "/token",
                    "client_id": CLIENT[0],
                    "client_secret": CLIENT[1],
                    "audience": idp.mcp_url,
                    "grant": grant,
                },
            },
        )
    assert registered.status_code == 201, registered.text
    record = dict(registered.json())
    assert "client_secret" not in json.dumps(record)
    return record


def mcp_audience(settings: Settings) -> str:
    return settings.effective_resource_id + "/mcp"


def call(gateway: Gateway, token: str) -> types.CallToolResult:
    async def run() -> types.CallToolResult:
        async with mcp_client(gateway.url + "/mcp", token, "2026-07-28") as client:
            return await client.call_tool("company__whoami", {})

    return gateway.server.run(run())  # type: ignore[no-any-return]


def text_of(result: types.CallToolResult) -> str:
    return "".join(c.text for c in result.content if isinstance(c, types.TextContent))


@pytest.mark.parametrize("grant", ["token_exchange", "jwt_bearer"])
def test_each_call_carries_the_users_own_token_from_their_idp(
    gateway: Gateway, idp: EnterpriseIdp, grant: str
) -> None:
    record = register(gateway, idp, grant)
    assert [t["name"] for t in record["tools"]] == ["whoami"]  # listed with the gateway's own
    audience = mcp_audience(gateway.settings)
    erin = idp.user_token("erin", audience)
    frank = idp.user_token("frank", audience)

    for user, token in (("erin", erin), ("frank", frank), ("erin", erin)):
        answer = call(gateway, token)
        assert not answer.is_error, text_of(answer)
        seen = json.loads(text_of(answer))
        assert seen["subject"] == user
        assert seen["audience"] == idp.mcp_url

    exchanges = [e for e in idp.exchanges if e["grant_type"] != "client_credentials"]
    expected = TOKEN_EXCHANGE if grant == "token_exchange" else JWT_BEARER
    assert {e["grant_type"] for e in exchanges} == {expected}
    presented = {e.get("subject_token") or e.get("assertion") for e in exchanges}
    assert presented == {erin, frank}, "each user's token once: the exchanged one is reused"
    if grant == "jwt_bearer":
        assert all(e["requested_token_use"] == "on_behalf_of" for e in exchanges)
    # The users' own tokens went to their provider only, never to the server.
    assert not {c["token"] for c in idp.calls} & {erin, frank}


def test_users_of_another_issuer_and_tokenless_calls_are_refused(
    gateway: Gateway, idp: EnterpriseIdp
) -> None:
    register(gateway, idp, "token_exchange")
    before = len(idp.exchanges), len(idp.calls)
    # A dev token: the gateway's own issuer, not the company's provider.
    refused = call(gateway, gateway.token("mallory"))
    assert refused.is_error
    assert idp.url in text_of(refused)
    assert (len(idp.exchanges), len(idp.calls)) == before, "nothing sent anywhere"

    async def from_a_flow() -> Any:
        # What a flow step (or a held call) does: the federation, with no token
        # of the user's -- the run keeps none.
        switchboard = gateway.server.app.state.switchboard
        caller = Caller(
            subject="erin", issuer=idp.url, scopes=frozenset(), actors=("app",), client_id="app"
        )
        return await switchboard.mcp.call_tool("company__whoami", {}, caller=caller)

    with pytest.raises(OnBehalfUnavailable, match="only a call you make yourself"):
        gateway.server.run(from_a_flow())
    assert len(idp.calls) == before[1]
    with gateway.client() as admin:
        audit = admin.get("/audit", params={"user": "erin"}).json()["items"]
    assert any(e["outcome"] == "on_behalf_refused" for e in audit)


def test_only_an_admin_registers_it(gateway: Gateway, idp: EnterpriseIdp) -> None:
    token = gateway.token("mallory", "switchboard:mcp-register")
    with gateway.client(token) as mallory:
        refused = mallory.post(
            "/mcp-servers",
            json={
                "name": "company",
                "url": idp.mcp_url,
                "credential": {
                    "type": "idp_token_exchange",
                    "issuer": idp.url,
                    "token_url": "http://127.0.0.1:9/steal",
                    "client_id": "x",
                    "client_secret": "y",
                },
            },
        )
    assert refused.status_code == 403, refused.text
    assert "idp_token_exchange" in refused.json()["detail"]


@pytest.mark.parametrize(
    ("change", "refusal"),
    [
        ({"token_url": "http://127.0.0.2:9/token"}, "own origin"),
        ({"issuer": "https://idp.elsewhere.example"}, "trusted issuers"),
    ],
)
def test_tokens_go_only_to_the_idp_that_issued_them(
    gateway: Gateway, idp: EnterpriseIdp, change: dict[str, str], refusal: str
) -> None:
    credential = {
        "type": "idp_token_exchange",
        "issuer": idp.url,
        "token_url": idp.url + "/token",
        "client_id": CLIENT[0],
        "client_secret": CLIENT[1],
        **change,
    }
    with gateway.client() as admin:
        refused = admin.post(
            "/mcp-servers", json={"name": "company", "url": idp.mcp_url, "credential": credential}
        )
    assert refused.status_code == 403, refused.text
    assert refusal in refused.json()["detail"]
    assert not idp.exchanges, "nothing was sent to any token endpoint"


AT_VENDOR = ("switchboard-at-vendor", "gw-secret-at-the-vendor")


def test_the_identity_assertion_grant_reaches_a_vendor_that_trusts_the_idp(
    gateway: Gateway, idp: EnterpriseIdp
) -> None:
    """MCP's enterprise-managed authorization (SEP-990): the vendor's own
    authorization server (the `mcp` SDK's) takes ID-JAGs from the company's
    provider; the gateway gets one per user at the provider and presents it
    there, as its confidential client, for the user's token at the vendor."""
    with Vendor() as vendor:
        vendor.trusted_idp = (idp.url, idp.key.public_jwk)
        vendor.stop()
        vendor.start()  # its token endpoint now takes the grant
        vendor.preregister(
            *AT_VENDOR,
            ["http://127.0.0.1/unused"],
            grant_types=(JWT_BEARER, "client_credentials"),
        )
        idp.jag_clients[vendor.issuer] = AT_VENDOR[0]
        with gateway.client() as admin:
            registered = admin.post(
                "/mcp-servers",
                json={
                    "name": "notes",
                    "url": vendor.mcp_url,
                    "credential": {
                        "type": "idp_token_exchange",
                        "grant": "identity_assertion",
                        "issuer": idp.url,
                        "token_url": idp.url + "/token",
                        "client_id": CLIENT[0],
                        "client_secret": CLIENT[1],
                        "resource": vendor.mcp_url,
                        "scope": "notes:read",
                        "authorization_server": vendor.issuer,
                        "authorization_server_token_url": vendor.url + "/token",
                        "authorization_server_client_id": AT_VENDOR[0],
                        "authorization_server_client_secret": AT_VENDOR[1],
                    },
                },
            )
        assert registered.status_code == 201, registered.text
        assert AT_VENDOR[1] not in registered.text and CLIENT[1] not in registered.text
        # Listed with the gateway's own token at the vendor (client credentials).
        assert [t["name"] for t in registered.json()["tools"]] == ["whoami", "write_note"]
        audience = mcp_audience(gateway.settings)
        erin, frank = idp.user_token("erin", audience), idp.user_token("frank", audience)

        async def whoami(token: str) -> types.CallToolResult:
            async with mcp_client(gateway.url + "/mcp", token, "2026-07-28") as client:
                return await client.call_tool("notes__whoami", {})

        for user, token in (("erin", erin), ("frank", frank)):
            answer = gateway.server.run(whoami(token))
            assert not answer.is_error, text_of(answer)
            assert json.loads(text_of(answer))["subject"] == user
        jags = [e for e in idp.exchanges if e.get("requested_token_type", "").endswith("id-jag")]
        assert [e["subject_token"] for e in jags] == [erin, frank]
        assert all(e["audience"] == vendor.issuer for e in jags)
        assert [a["sub"] for a in vendor.assertions] == ["erin", "frank"]
        assert all(a["client_id"] == AT_VENDOR[0] for a in vendor.assertions)
        # The users' own tokens went to their provider only; the ID-JAGs to the vendor's AS.
        sent = {c["token"] for c in vendor.calls}
        assert not sent & {erin, frank}


def test_the_identity_assertion_grant_needs_its_authorization_server(
    gateway: Gateway, idp: EnterpriseIdp
) -> None:
    base = {
        "type": "idp_token_exchange",
        "grant": "identity_assertion",
        "issuer": idp.url,
        "token_url": idp.url + "/token",
        "client_id": CLIENT[0],
        "client_secret": CLIENT[1],
    }
    elsewhere = {
        "authorization_server": "https://as.example",
        "authorization_server_token_url": "https://other.example/token",
        "authorization_server_client_id": "x",
        "authorization_server_client_secret": "y",
    }
    with gateway.client() as admin:
        missing = admin.post(
            "/mcp-servers", json={"name": "n", "url": idp.mcp_url, "credential": base}
        )
        assert missing.status_code == 422, missing.text
        moved = admin.post(
            "/mcp-servers",
            json={"name": "n", "url": idp.mcp_url, "credential": {**base, **elsewhere}},
        )
        assert moved.status_code == 403, moved.text
        assert "authorization_server's origin" in moved.json()["detail"]
        stray = admin.post(
            "/mcp-servers",
            json={
                "name": "n",
                "url": idp.mcp_url,
                "credential": {**base, "grant": "token_exchange", **elsewhere},
            },
        )
        assert stray.status_code == 422, stray.text

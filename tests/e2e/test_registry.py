"""The registry end to end: a real gateway, real agents, real HTTP on 127.0.0.1.

Runs on the embedded SQLite and on the local PostgreSQL (`database_url`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from registry.tls import client_tls
from tests.support.agents import CardHost, CardSource, sdk_card, v02_card, v03_card
from tests.support.databases import admin_sql
from tests.support.gateway import Gateway, start_gateway
from tests.support.servers import ServerThread


@pytest.fixture
def gw(tmp_path: Path, database_url: str | None) -> Any:
    gateway = start_gateway(tmp_path / "data", database_url)
    yield gateway
    gateway.stop()


def _register(client: httpx.Client, **body: Any) -> httpx.Response:
    return client.post("/agents", json=body)


def test_register_official_sdk_agent_by_base_url(gw: Gateway, sdk_agent: ServerThread) -> None:
    with gw.client() as client:
        response = _register(client, card_url=sdk_agent.url)
        assert response.status_code == 201, response.text
        record = response.json()
        assert response.headers["location"] == "/agents/inventory-agent"
        assert record["id"] == "inventory-agent"
        assert record["name"] == "Inventory Agent"
        assert record["version"] == "1.0.0"
        assert record["protocol_version"] == "1.0"
        assert record["revision"] == 1
        assert record["card_url"] == sdk_agent.url + "/.well-known/agent-card.json"
        assert record["card_digest"].startswith("sha256:") and len(record["card_digest"]) == 71
        assert [s["id"] for s in record["skills"]] == ["check-stock"]
        assert record["skills"][0]["tags"] == ["inventory", "warehouse"]
        assert record["interfaces"] == [
            {"url": sdk_agent.url + "/", "protocol_binding": "JSONRPC", "protocol_version": "1.0"}
        ]
        # Checked once as it is registered, not at the checker's next round.
        assert record["health"]["status"] == "healthy"
        assert record["signature"]["status"] == "unsigned"
        assert record["registered_at"]

        assert client.get("/agents/inventory-agent").json() == record
        card = client.get("/agents/inventory-agent/card").json()
        assert card["supportedInterfaces"][0]["url"] == sdk_agent.url + "/"


def test_full_card_url_and_explicit_id(gw: Gateway, sdk_agent: ServerThread) -> None:
    with gw.client() as client:
        url = sdk_agent.url + "/.well-known/agent-card.json"
        response = _register(client, card_url=url, id="stock")
        assert response.status_code == 201, response.text
        assert response.json()["id"] == "stock"
        assert response.json()["card_url"] == url


def test_v03_card_is_normalised_and_original_kept(
    gw: Gateway, card_host: tuple[CardHost, ServerThread]
) -> None:
    host, server = card_host
    original = v03_card(server.url)
    host.documents["/.well-known/agent-card.json"] = (200, original)
    with gw.client() as client:
        record = _register(client, card_url=server.url).json()
        assert record["protocol_version"] == "0.3"
        assert {(i["url"], i["protocol_binding"]) for i in record["interfaces"]} == {
            (server.url + "/a2a", "JSONRPC"),
            (server.url + "/rest", "HTTP+JSON"),
        }
        card = client.get(f"/agents/{record['id']}/card").json()
        assert "url" not in card and "supportedInterfaces" in card
        assert card["capabilities"]["extendedAgentCard"] is True
        assert (
            card["securityRequirements"] == [{"schemes": {"bearer": {}}}]
            or card["securityRequirements"]
        )
        assert "httpAuthSecurityScheme" in card["securitySchemes"]["bearer"]
        assert (
            client.get(f"/agents/{record['id']}/card", params={"original": "true"}).json()
            == original
        )


def test_v02_card_found_at_legacy_path(
    gw: Gateway, card_host: tuple[CardHost, ServerThread]
) -> None:
    host, server = card_host
    host.documents["/.well-known/agent.json"] = (200, v02_card(server.url))
    with gw.client() as client:
        response = _register(client, card_url=server.url)
        assert response.status_code == 201, response.text
        assert response.json()["protocol_version"] == "0.2"
        assert response.json()["card_url"] == server.url + "/.well-known/agent.json"
    assert host.hits["/.well-known/agent-card.json"] == 1  # the 1.0 path was tried first


def test_inline_registration(gw: Gateway) -> None:
    card = v03_card("https://crm.example.com")
    with gw.client() as client:
        response = _register(client, card=card)
        assert response.status_code == 201, response.text
        assert response.json()["card_url"] is None
        assert response.json()["id"] == "legacy-crm-agent"
        assert response.json()["resource"] == "https://crm.example.com/a2a"
        # The same name at another URL gets the next free slug, not a conflict.
        second = _register(client, card=v03_card("https://crm-eu.example.com"))
        assert second.status_code == 201
        assert second.json()["id"] == "legacy-crm-agent-2"
        # The same agent (same URL, so the same token audience) twice is a
        # conflict: a resource names exactly one agent, or audience binding means nothing.
        third = _register(client, card=card)
        assert third.status_code == 409, third.text
        # ...unless the operator gives it a resource of its own.
        fourth = _register(client, card=card, resource="urn:example:crm-staging")
        assert fourth.status_code == 201, fourth.text
        assert fourth.json()["resource"] == "urn:example:crm-staging"


def test_search_filters_and_pagination(gw: Gateway) -> None:
    with gw.client() as client:
        for i in range(5):
            card = v03_card(f"https://crm{i}.example.com", name=f"CRM {i}")
            assert _register(client, card=card, id=f"crm-{i}").status_code == 201
        inventory = sdk_card("https://inventory.example.com")
        from google.protobuf.json_format import MessageToDict

        assert _register(client, card=MessageToDict(inventory), id="inventory").status_code == 201

        def ids(**params: Any) -> list[str]:
            response = client.get("/agents", params=params)
            assert response.status_code == 200, response.text
            return [a["id"] for a in response.json()["items"]]

        assert ids(skill="check-stock") == ["inventory"]
        assert ids(tag="WAREHOUSE") == ["inventory"]  # tags match case-insensitively
        assert ids(tag="crm") == [f"crm-{i}" for i in range(5)]
        assert ids(input_mode="application/json") == [f"crm-{i}" for i in range(5)]
        assert ids(output_mode="application/json") == [
            "crm-0",
            "crm-1",
            "crm-2",
            "crm-3",
            "crm-4",
            "inventory",
        ]
        assert ids(q="widgets") == ["inventory"]  # skill examples are searched
        assert ids(q="customer EMAIL") == [f"crm-{i}" for i in range(5)]
        assert ids(q="crm 3") == ["crm-3"]
        assert ids(q="wid") == ["inventory"]  # words match by prefix
        assert ids(q="100%") == ["inventory"]  # "X-100": punctuation is no wildcard
        assert ids(q="_") == ids()  # no words: no filter
        assert ids(q="nothing-matches") == []
        assert ids(skill="lookup-customer", q="inventory") == []

        seen: list[str] = []
        cursor = None
        while True:
            params: dict[str, Any] = {"limit": 2}
            if cursor:
                params["cursor"] = cursor
            page = client.get("/agents", params=params).json()
            seen += [a["id"] for a in page["items"]]
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert seen == sorted(seen) and len(seen) == 6

        assert client.get("/agents", params={"limit": 0}).status_code == 422
        assert client.get("/agents", params={"limit": 201}).status_code == 422
        assert client.get("/agents", params={"cursor": "%%%"}).status_code == 400


def test_refresh_keeps_history(
    gw: Gateway, sdk_agent: ServerThread, card_source: CardSource
) -> None:
    with gw.client() as client:
        agent_id = _register(client, card_url=sdk_agent.url).json()["id"]
        unchanged = client.post(f"/agents/{agent_id}/refresh")
        assert unchanged.status_code == 200, unchanged.text
        assert unchanged.json()["changed"] is False
        assert unchanged.json()["agent"]["revision"] == 1

        card_source.card = sdk_card(sdk_agent.url, version="1.1.0", name="Inventory Agent")
        refreshed = client.post(f"/agents/{agent_id}/refresh").json()
        assert refreshed["changed"] is True
        assert refreshed["agent"]["revision"] == 2
        assert refreshed["agent"]["version"] == "1.1.0"

        versions = client.get(f"/agents/{agent_id}/versions").json()
        assert [(v["revision"], v["version"]) for v in versions] == [(2, "1.1.0"), (1, "1.0.0")]
        assert versions[0]["card_digest"] != versions[1]["card_digest"]
        assert (
            client.get(f"/agents/{agent_id}/card", params={"revision": 1}).json()["version"]
            == "1.0.0"
        )
        assert client.get(f"/agents/{agent_id}/card").json()["version"] == "1.1.0"
        assert client.get(f"/agents/{agent_id}/card", params={"revision": 9}).status_code == 404

        # A refresh that fetches an invalid card changes nothing.
        card_source.card = sdk_card(sdk_agent.url, version="")
        bad = client.post(f"/agents/{agent_id}/refresh")
        assert bad.status_code == 422
        assert any(e["field"] == "version" for e in bad.json()["errors"])
        assert client.get(f"/agents/{agent_id}").json()["revision"] == 2


def test_inline_refresh_takes_a_new_card(gw: Gateway) -> None:
    card = v03_card("https://crm.example.com")
    with gw.client() as client:
        agent_id = _register(client, card=card).json()["id"]
        assert client.post(f"/agents/{agent_id}/refresh").status_code == 422
        card["version"] = "3.0.0"
        response = client.post(f"/agents/{agent_id}/refresh", json={"card": card})
        assert response.status_code == 200, response.text
        assert response.json()["agent"]["revision"] == 2


def test_state_survives_a_restart(
    tmp_path: Path, database_url: str | None, sdk_agent: ServerThread
) -> None:
    gateway = start_gateway(tmp_path / "data", database_url)
    try:
        token = gateway.token("admin", "switchboard:admin")
        jwks_before = httpx.get(gateway.url + "/.well-known/jwks.json", verify=client_tls()).json()
        with gateway.client(token) as client:
            assert _register(client, card_url=sdk_agent.url).status_code == 201
        gateway = gateway.restart()
        # Same key after the restart, so a token issued before still works.
        assert (
            httpx.get(gateway.url + "/.well-known/jwks.json", verify=client_tls()).json()
            == jwks_before
        )
        with gateway.client(token) as client:
            record = client.get("/agents/inventory-agent")
            assert record.status_code == 200, record.text
            assert record.json()["skills"][0]["id"] == "check-stock"
            assert len(client.get("/agents").json()["items"]) == 1
    finally:
        gateway.stop()


def test_conflicts(gw: Gateway, sdk_agent: ServerThread) -> None:
    with gw.client() as client:
        assert _register(client, card_url=sdk_agent.url, id="one").status_code == 201
        same_url = _register(client, card_url=sdk_agent.url, id="two")
        assert same_url.status_code == 409
        assert same_url.headers["content-type"] == "application/problem+json"
        same_id = _register(client, card=v03_card("https://x.example.com"), id="one")
        assert same_id.status_code == 409
        assert [a["id"] for a in client.get("/agents").json()["items"]] == ["one"]
        assert client.get("/agents/one").json()["name"] == "Inventory Agent"


def test_delete(gw: Gateway, sdk_agent: ServerThread, card_source: CardSource) -> None:
    with gw.client() as client:
        agent_id = _register(client, card_url=sdk_agent.url).json()["id"]
        card_source.card = sdk_card(sdk_agent.url, version="2.0.0")
        client.post(f"/agents/{agent_id}/refresh")
        assert client.delete(f"/agents/{agent_id}").status_code == 204
        assert client.get(f"/agents/{agent_id}").status_code == 404
        assert client.get(f"/agents/{agent_id}/versions").status_code == 404
        assert client.delete(f"/agents/{agent_id}").status_code == 404
        # The URL is free again.
        assert _register(client, card_url=sdk_agent.url).status_code == 201


@pytest.mark.postgres
def test_readyz_reports_a_lost_database(tmp_path: Path, postgres_url: str) -> None:
    gateway = start_gateway(tmp_path / "data", postgres_url)
    try:
        token = gateway.mint()
        assert httpx.get(gateway.url + "/readyz", verify=client_tls()).status_code == 200
        name = postgres_url.rsplit("/", 1)[1]
        admin_sql(f'DROP DATABASE "{name}" WITH (FORCE)')
        response = httpx.get(gateway.url + "/readyz", verify=client_tls())
        assert response.status_code == 503
        assert response.json()["type"] == "urn:switchboard:problem:not-ready"
        assert (
            httpx.get(gateway.url + "/healthz", verify=client_tls()).status_code == 200
        )  # alive, not ready
        with gateway.client(token) as client:
            listing = client.get("/agents")
            assert listing.status_code == 503
            assert listing.headers["retry-after"] == "5"
            assert listing.json()["type"] == "urn:switchboard:problem:database-unavailable"
            assert "Traceback" not in listing.text
    finally:
        gateway.stop()

"""A REST API federated by its OpenAPI document whose calls carry each user's
own connected account (``user_oauth``), end to end: the API trusts only the
vendor's authorization server (`gateway.demo.vendor`, the official SDK's),
a real gateway on both databases, users connecting through the console as a
browser would, and the `mcp` SDK's client through `/mcp`.

What must hold: a user who has not connected is told where to and nothing
reaches the API; a connected user's call reaches it with that user's own
token, never another's."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlparse

import httpx
import mcp_types as types

from gateway.demo.vendor import Vendor
from registry.tls import client_tls
from tests.support.console import dev_login
from tests.support.gateway import SECRET_KEY, Gateway, GatewayFactory
from tests.support.mcp_clients import mcp_client
from tests.support.rest_api import Seen, vendor_api
from tests.support.servers import ServerThread


@contextlib.contextmanager
def browser(gateway: Gateway, subject: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=gateway.url, timeout=30, verify=client_tls()) as client:
        dev_login(client, subject)
        yield client


def connect(gateway: Gateway, vendor: Vendor, api: ServerThread, user: str) -> None:
    """``user`` connects their vendor account through the console."""
    with browser(gateway, user) as console:
        started = console.get("/ui/connections/notes/connect")
        assert started.status_code == 303, started.text
        authorize = started.headers["location"]
        assert parse_qs(urlparse(authorize).query)["resource"] == [api.url + "/"]
        cookies = vendor.login(f"{user}@vendor")
        at_vendor = httpx.get(authorize, cookies=cookies, timeout=30, verify=client_tls())
        assert at_vendor.status_code in (302, 303), at_vendor.text
        done = console.get(at_vendor.headers["location"].removeprefix(gateway.url))
        assert done.status_code == 303, done.text
        assert done.headers["location"].endswith("connected=notes")


def call(gateway: Gateway, user: str, tool: str, **arguments: Any) -> types.CallToolResult:
    token = gateway.token(user)

    async def run() -> types.CallToolResult:
        async with mcp_client(gateway.url + "/mcp", token, "2026-07-28") as client:
            await client.list_tools()
            return await client.call_tool(tool, arguments)

    return gateway.server.run(run())  # type: ignore[no-any-return]


def text_of(result: types.CallToolResult) -> str:
    return "".join(c.text for c in result.content if isinstance(c, types.TextContent))


def test_each_user_calls_the_api_with_their_own_account(
    make_gateway: GatewayFactory, database_url: str | None, vendor: Vendor
) -> None:
    gateway = make_gateway(database_url, policy="agents: {}\n", secret_key=SECRET_KEY)
    seen = Seen()
    with ServerThread(lambda url: vendor_api(vendor, seen, url)) as api:
        with gateway.client() as admin:
            registered = admin.post(
                "/mcp-servers",
                json={
                    "name": "notes",
                    "openapi": {"url": api.url + "/openapi.json"},
                    "credential": {"type": "user_oauth"},
                },
            )
        assert registered.status_code == 201, registered.text
        assert [t["name"] for t in registered.json()["tools"]] == ["whoami"]

        refused = call(gateway, "alice", "notes__whoami")
        assert refused.is_error
        assert gateway.url + "/ui/connections/notes/connect" in text_of(refused)
        assert seen.requests == [], "nothing is sent for a user without a connection"

        connect(gateway, vendor, api, "alice")
        answer = call(gateway, "alice", "notes__whoami")
        assert not answer.is_error, text_of(answer)
        assert answer.structured_content == {"subject": "alice@vendor"}
        alices = {t for t, a in vendor.provider.access.items() if a.subject == "alice@vendor"}
        assert seen.requests[-1][3]["authorization"].removeprefix("Bearer ") in alices

        connect(gateway, vendor, api, "bob")
        bobs = call(gateway, "bob", "notes__whoami")
        assert json.loads(text_of(bobs)) == {"subject": "bob@vendor"}
        carol = call(gateway, "carol", "notes__whoami")
        assert carol.is_error, "bob's connection is bob's alone"
        assert len(seen.requests) == 2

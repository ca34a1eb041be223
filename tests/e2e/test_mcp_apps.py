"""MCP Apps (SEP-1865) through the gateway, end to end: an upstream on the
official SDK serves an app -- a `ui://` resource of type
`text/html;profile=mcp-app` with its CSP and permissions, and a tool whose
`_meta.ui.resourceUri` opens it -- and the `mcp` SDK's client, declaring the
apps extension as a host that renders them does, finds the tool, follows its
reference and reads the app through the gateway, at both revisions.

What must hold: the resource and the tool's reference are rewritten alike
(`ui://switchboard/{server}/...`, still `ui://`, one name only); the CSP,
permissions and border preference pass through untouched, the upstream's
sandbox `domain` does not; a prefix-less server's app is rewritten the same
way; a virtual server that does not select the server has no such resource
and offers the tool without its app; the upstream is told the gateway
relays apps, and a caller's own declaration reaches it with its call.
An app follows the decision on the tools that open it: a caller who may not
call them neither sees nor reads it, unless the policy names the app itself.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from mcp import MCPError
from mcp.client import advertise
from mcp.server.mcpserver import MCPServer

from gateway.mcp.errors import DELEGATION_REFUSED
from tests.support.databases import database_beside
from tests.support.gateway import Gateway, start_gateway
from tests.support.inspecting import Recorder
from tests.support.mcp_clients import MODES, mcp_client
from tests.support.mcp_servers import ToolBox, upstream_server
from tests.support.servers import ServerThread, stop_all

APP_EXTENSION = "io.modelcontextprotocol/ui"
APP_MIME = "text/html;profile=mcp-app"
APP_URI = "ui://weather/forecast.html"
PAGE = "<!doctype html><title>Forecast</title><div id='app'>sunny</div>"
UI_META = {
    "csp": {
        "connectDomains": ["https://api.weather.example"],
        "resourceDomains": ["https://cdn.weather.example"],
    },
    "permissions": {"geolocation": {}},
    "prefersBorder": True,
}
# The upstream's own sandbox origin: not the gateway's, so never offered.
DOMAIN = {"domain": "a904794854a047f6.claudemcpcontent.com"}


def app_server() -> tuple[ServerThread, Recorder]:
    box = ToolBox(MCPServer("weather"))

    async def forecast(city: str) -> str:
        return f"sunny in {city}"

    async def page() -> str:
        return PAGE

    box.server.add_tool(
        forecast,
        description="The forecast, shown in its app.",
        meta={"ui": {"resourceUri": APP_URI, "visibility": ["model", "app"]}},
    )
    served = {"ui": {**UI_META, **DOMAIN}}
    box.server.resource(APP_URI, name="forecast", mime_type=APP_MIME, meta=served)(page)
    thread, recorder, _ = upstream_server(box)
    return thread, recorder


@dataclass
class Setup:
    gateway: Gateway
    recorder: Recorder
    servers: list[ServerThread]

    def admin(self) -> httpx.Client:
        return self.gateway.client()


@contextmanager
def running_setup(
    tmp_path: Path, database_url: str | None, policy: str | None = None
) -> Iterator[Setup]:
    gateway = start_gateway(tmp_path / "data", database_url, policy=policy)
    weather, recorder = app_server()
    plain, _ = app_server()
    running = Setup(gateway, recorder, [weather, plain])
    try:
        with running.admin() as admin:
            for body in (
                {"name": "weather", "url": weather.url + "/mcp"},
                {"name": "plainwx", "url": plain.url + "/mcp", "prefix_tools": False},
            ):
                added = admin.post("/mcp-servers", json=body)
                assert added.status_code == 201, added.text
        yield running
    finally:
        stop_all(*running.servers)
        gateway.server.stop()


@pytest.fixture(scope="module")
def setup(
    tmp_path_factory: pytest.TempPathFactory, module_database_url: str | None
) -> Iterator[Setup]:
    """One deployment for the module's tests: they read, or define a set of
    a name of their own."""
    with running_setup(tmp_path_factory.mktemp("apps"), module_database_url) as running:
        yield running


def host(setup: Setup, path: str, mode: str, steps: Any, token: str | None = None) -> Any:
    """A client that renders apps: it says so (the extension's settings)."""
    token = token or setup.gateway.token("alice")

    async def run() -> Any:
        async with mcp_client(
            setup.gateway.url + path,
            token,
            mode,
            extensions=[advertise(APP_EXTENSION, {"mimeTypes": [APP_MIME]})],
        ) as client:
            return await steps(client)

    return setup.gateway.server.run(run())


@pytest.mark.parametrize("mode", MODES)
def test_an_upstreams_app_opens_through_the_gateway(setup: Setup, mode: str) -> None:
    async def steps(client: Any) -> dict[str, Any]:
        tools = {t.name: t for t in (await client.list_tools()).tools}
        opens = {name: tools[name].meta["ui"]["resourceUri"] for name in tools if tools[name].meta}
        listed = {r.uri: r for r in (await client.list_resources()).resources}
        read = {uri: await client.read_resource(uri) for uri in opens.values()}
        called = await client.call_tool("weather__forecast", {"city": "Oslo"})
        return {"tools": tools, "opens": opens, "listed": listed, "read": read, "called": called}

    heard = len(setup.recorder.calls())  # the upstream is shared: what this test made it hear
    seen = host(setup, "/mcp", mode, steps)
    mine = "ui://switchboard/weather/weather/forecast.html"
    plain = "ui://switchboard/plainwx/weather/forecast.html"
    # The tools' references, rewritten as their resources are offered.
    assert seen["opens"] == {"weather__forecast": mine, "forecast": plain}
    assert seen["tools"]["weather__forecast"].meta["ui"]["visibility"] == ["model", "app"]
    for uri in (mine, plain):
        resource = seen["listed"][uri]
        assert resource.mime_type == APP_MIME
        assert resource.meta == {"ui": UI_META}
        [content] = seen["read"][uri].contents
        assert content.uri == uri and content.mime_type == APP_MIME
        assert content.text == PAGE
        assert "domain" not in (content.meta or {}).get("ui", {})
    assert APP_URI not in seen["listed"]  # never under the upstream's own name
    assert not seen["called"].is_error and "sunny in Oslo" in seen["called"].content[0].text
    # The upstream heard that apps are relayed, and (2026-07-28) the host's own say.
    bodies = [s.body for s in setup.recorder.calls()[heard:]]
    assert any(APP_EXTENSION.encode() in body for body in bodies)
    if mode != "legacy":
        [call] = [b for b in bodies if b"tools/call" in b]
        assert APP_EXTENSION.encode() in call


def test_a_set_without_the_server_has_no_app(setup: Setup) -> None:
    with setup.admin() as admin:
        # The weather server's tool by name, but not the server: no app.
        select = {"servers": ["plainwx"], "tools": ["weather__forecast"]}
        body = {"name": "other", "title": "Other", "select": select}
        assert admin.post("/mcp-sets", json=body).status_code == 201

    async def steps(client: Any) -> tuple[set[str], str]:
        tools = {t.name: t for t in (await client.list_tools()).tools}
        assert "ui" not in (tools["weather__forecast"].meta or {})
        assert tools["forecast"].meta["ui"]["resourceUri"].startswith("ui://switchboard/plainwx/")
        listed = {r.uri for r in (await client.list_resources()).resources}
        try:
            await client.read_resource("ui://switchboard/weather/weather/forecast.html")
            answer = "read"
        except Exception as exc:  # the SDK raises the JSON-RPC error
            answer = str(exc)
        return listed, answer

    listed, answer = host(setup, "/mcp/other", "2026-07-28", steps)
    assert listed == {"ui://switchboard/plainwx/weather/forecast.html"}
    assert "not found" in answer.lower()


@pytest.mark.parametrize(
    "uri",
    [
        "ui://switchboard/nosuch/weather/forecast.html",
        "ui://switchboard/weather",
        "ui://switchboard//x",
        "ui://weather/forecast.html",
        "UI://SWITCHBOARD/weather/weather/forecast.html",
        "switchboard://weather/ui://weather/forecast.html",
    ],
)
def test_an_app_uri_that_names_nothing_is_not_found(setup: Setup, uri: str) -> None:
    async def steps(client: Any) -> str:
        try:
            await client.read_resource(uri)
        except Exception as exc:
            return str(exc)
        return "read"

    answer = host(setup, "/mcp", "2026-07-28", steps)
    assert answer != "read" and ("not found" in answer.lower() or "unknown" in answer.lower())


# Both servers' tool needs `weather:read`; plainwx's app is named by the policy
# itself (a rule of its own, here one that lets anyone read it).
GUARDED = """
version: 1
agents:
  weather:
    tools:
      forecast: {require: ["weather:read"]}
  plainwx:
    tools:
      forecast: {require: ["weather:read"]}
    resources:
      "ui://weather/forecast.html": {}
"""


@pytest.fixture(scope="module")
def guarded(
    tmp_path_factory: pytest.TempPathFactory, module_database_url: str | None
) -> Iterator[Setup]:
    """A deployment under GUARDED, for the tests that only read through it."""
    tmp_path = tmp_path_factory.mktemp("apps-guarded")
    with (
        database_beside(module_database_url) as url,
        running_setup(tmp_path, url, GUARDED) as running,
    ):
        yield running


@pytest.mark.parametrize("mode", MODES)
def test_an_app_follows_the_decision_on_its_tool(guarded: Setup, mode: str) -> None:
    mine = "ui://switchboard/weather/weather/forecast.html"
    plain = "ui://switchboard/plainwx/weather/forecast.html"

    async def steps(client: Any) -> dict[str, Any]:
        tools = {t.name for t in (await client.list_tools()).tools}
        listed = {r.uri for r in (await client.list_resources()).resources}
        read: dict[str, Any] = {}
        for uri in (mine, plain):
            try:
                [content] = (await client.read_resource(uri)).contents
                read[uri] = content.text
            except MCPError as exc:
                read[uri] = exc
        return {"tools": tools, "listed": listed, "read": read}

    setup = guarded
    without = host(setup, "/mcp", mode, steps, setup.gateway.token("bob"))
    holder = setup.gateway.token("alice", "weather:read")
    with_scope = host(setup, "/mcp", mode, steps, holder)

    # Without the scope: neither tool, and not weather's app -- not listed, a read refused.
    assert not {"weather__forecast", "forecast"} & without["tools"]
    assert mine not in without["listed"]
    refused = without["read"][mine]
    assert isinstance(refused, MCPError) and refused.code == DELEGATION_REFUSED
    assert "weather__forecast" in refused.message
    # plainwx's app is granted by a rule of its own: listed and read all the same.
    assert plain in without["listed"] and without["read"][plain] == PAGE
    # With it: the tools, and both apps, listed and read.
    assert {"weather__forecast", "forecast"} <= with_scope["tools"]
    assert {mine, plain} <= with_scope["listed"]
    assert with_scope["read"] == {mine: PAGE, plain: PAGE}

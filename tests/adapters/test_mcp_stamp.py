"""The pass-through's `tools/call` stamp (`adapters.mcp_stamp`) is the SDK's:
the same ``_meta`` and headers as the session's own stamp (its private
``ClientSession._stamp``, read here only) for the same call, capabilities
aside (the gateway puts the caller's there on purpose). Fails if an upgrade
of the mcp SDK changes what it stamps. The gateway's own SDK client
(`adapters.mcp_client.open_client`) against a real SDK server over HTTP on
127.0.0.1 at 2026-07-28, whose tools declare ``x-mcp-header``."""

from __future__ import annotations

import asyncio
import copy
from typing import Any

import mcp_types as types
from mcp import Client
from mcp.server import Server, ServerRequestContext
from mcp.shared.dispatcher import CallOptions
from mcp_types import CLIENT_CAPABILITIES_META_KEY, LOG_LEVEL_META_KEY

from adapters.mcp_client import UpstreamSpec, list_all_tools, open_client
from adapters.mcp_http import UpstreamAuth
from adapters.mcp_relay import OWN_CAPABILITIES
from adapters.mcp_stamp import ToolCallStamp
from tests.support.mcp_client_side import loopback_http
from tests.support.servers import ServerThread


def _schema(**properties: Any) -> dict[str, Any]:
    return {"type": "object", "properties": properties}


REGION = types.Tool(
    name="region",
    input_schema=_schema(
        where={"type": "string", "x-mcp-header": "Region"},
        n={"type": "integer", "x-mcp-header": "N"},
        fast={"type": "boolean", "x-mcp-header": "Fast"},
        target=_schema(zone={"type": "string", "x-mcp-header": "Zone"}),
        note={"type": "string"},
    ),
)
PLAIN = types.Tool(name="plain", input_schema=_schema(a={"type": "integer"}))
# An annotation on an object is invalid: the SDK drops the tool from its
# listing (2026-07-28: clients MUST), so no header is ever mirrored for it.
INVALID = types.Tool(
    name="invalid", input_schema=_schema(bad={"type": "object", "x-mcp-header": "Bad"})
)
# Added by the second listing, which no longer lists REGION.
LATER = types.Tool(name="later", input_schema=_schema(k={"type": "string", "x-mcp-header": "K"}))

CALLS: list[dict[str, Any]] = [
    {"name": "region", "arguments": {"where": "eu-west", "n": 3, "fast": True}},
    {"name": "region", "arguments": {"where": "eu-west ü", "target": {"zone": "b"}}},
    {"name": "region", "arguments": {"where": None, "n": 10**5000, "fast": False}},
    {"name": "region", "arguments": {"target": "not an object", "note": "x"}},
    {"name": "region"},
    {"name": "region", "arguments": {"where": "x"}, "_meta": {LOG_LEVEL_META_KEY: "debug"}},
    {"name": "plain", "arguments": {"a": 1}},
    {"name": "invalid", "arguments": {"bad": "x"}},
    {"name": "later", "arguments": {"k": "v"}},
    {"name": "never-listed", "arguments": {"where": "eu"}},
    {"name": "naïve tool", "arguments": {}},
]


def _server(tools: list[types.Tool]) -> ServerThread:
    async def on_list_tools(
        ctx: ServerRequestContext[Any], params: types.PaginatedRequestParams | None
    ) -> types.ListToolsResult:
        return types.ListToolsResult(tools=list(tools))

    server: Server[Any] = Server("stamp-test", on_list_tools=on_list_tools)
    return ServerThread(lambda _url: server.streamable_http_app(stateless_http=True)).start()


def _sdk_stamp(client: Client, params: dict[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    data: dict[str, Any] = {"method": "tools/call", "params": copy.deepcopy(params)}
    opts: CallOptions = {}
    client.session._stamp(data, opts)
    # Nothing else the pass-through would have to carry over (a timeout, a
    # cancellation rule): only headers.
    assert set(opts) == {"headers"}, opts
    return data["params"]["_meta"], dict(opts["headers"])


def _owned_stamp(
    stamp: ToolCallStamp, params: dict[str, Any]
) -> tuple[dict[str, Any], dict[str, str]]:
    stamped = copy.deepcopy(params)
    headers: dict[str, str] = {}
    stamp.stamp(stamped, headers)
    return stamped["_meta"], headers


def _assert_same(client: Client, stamp: ToolCallStamp) -> None:
    for params in CALLS:
        sdk_meta, sdk_headers = _sdk_stamp(client, params)
        meta, headers = _owned_stamp(stamp, params)
        assert headers == sdk_headers, params
        assert meta.pop(CLIENT_CAPABILITIES_META_KEY) == OWN_CAPABILITIES  # no caller here
        sdk_meta.pop(CLIENT_CAPABILITIES_META_KEY)
        assert meta == sdk_meta, params


def _assert_same_listing(client: Client, stamp: ToolCallStamp) -> None:
    """A probe's `tools/list` (its first page: no cursor) is stamped as the
    session stamps its own listing."""
    data: dict[str, Any] = {"method": "tools/list", "params": {}}
    opts: CallOptions = {}
    client.session._stamp(data, opts)
    params: dict[str, Any] = {}
    headers: dict[str, str] = {}
    stamp.stamp_listing(params, headers)
    assert headers == dict(opts["headers"])
    assert params["_meta"].pop(CLIENT_CAPABILITIES_META_KEY) == OWN_CAPABILITIES
    data["params"]["_meta"].pop(CLIENT_CAPABILITIES_META_KEY)
    assert params == data["params"]


def test_the_owned_stamp_is_the_sdks() -> None:
    tools = [REGION, PLAIN, INVALID, types.Tool(name="naïve tool", input_schema=_schema())]
    server = _server(tools)

    async def scenario() -> None:
        spec = UpstreamSpec("s", "http", url=server.url + "/mcp")
        async with open_client(spec, loopback_http, UpstreamAuth(), timeout=10) as client:
            assert client.protocol_version == "2026-07-28"
            stamp = ToolCallStamp(client.protocol_version)
            _assert_same(client, stamp)  # nothing listed yet: no Mcp-Param headers
            stamp.tools_listed(await list_all_tools(client))
            _assert_same(client, stamp)
            sdk_headers = _sdk_stamp(client, CALLS[1])[1]
            assert sdk_headers["Mcp-Param-Zone"] == "b"  # the comparison saw a header
            tools[:] = [PLAIN, LATER]  # listed again: region gone, later added
            stamp.tools_listed(await list_all_tools(client))
            _assert_same(client, stamp)
            stamp.tools_listed(await list_all_tools(client))  # the same again: maps stand
            _assert_same(client, stamp)
            _assert_same_listing(client, stamp)

    try:
        asyncio.run(scenario())
    finally:
        server.stop()

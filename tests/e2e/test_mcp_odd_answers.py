"""An upstream's odd or bad answer never takes it down (issue 16).

A real gateway and a real SDK server on 127.0.0.1 whose answers are
rewritten (`tests.support.odd_upstreams`): without ``resultType`` (MCP
2026-07-28: absent means "complete"), or malformed once. Through the
pass-through (the default for `tools/call`) and through the SDK's client.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import mcp_types as types
import pytest

from adapters.mcp import UpstreamError
from tests.e2e.test_mcp_federation import Federation, text_of
from tests.support.gateway import start_gateway
from tests.support.mcp_clients import mcp_client
from tests.support.odd_upstreams import Oddities, odd_server
from tests.support.servers import stop_all


@pytest.fixture(params=[True, False], ids=["passthrough", "sdk"])
def federation(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Federation]:
    gateway = start_gateway(
        tmp_path / "data",
        None,
        mcp_probe_seconds=0.5,
        mcp_reconcile_seconds=0.5,
        mcp_passthrough=request.param,
    )
    fed = Federation(gateway)
    try:
        yield fed
    finally:
        stop_all(gateway.server, *fed.upstreams)


def test_a_result_without_result_type_is_complete(federation: Federation) -> None:
    odd = Oddities(bare=True)
    server = odd_server(odd)
    federation.upstreams.append(server)
    federation.register("Bare", server)

    for _ in range(3):
        result = federation.call("bare__add", {"a": 2, "b": 3})
        assert not result.is_error
        assert text_of(result) == "5"
    assert federation.server("bare")["health"]["status"] == "healthy"


async def _call_over_mcp(url: str, token: str) -> types.CallToolResult:
    async with mcp_client(url, token, "2026-07-28") as client:
        return await client.call_tool("bare__add", {"a": 4, "b": 5})


def test_a_bare_result_reaches_an_mcp_client_as_complete(federation: Federation) -> None:
    odd = Oddities(bare=True)
    server = odd_server(odd)
    federation.upstreams.append(server)
    federation.register("Bare", server)
    gateway = federation.gateway
    result = asyncio.run(_call_over_mcp(gateway.server.url + "/mcp", gateway.token("alice")))
    assert text_of(result) == "9"


def test_a_malformed_answer_fails_that_call_only(federation: Federation) -> None:
    odd = Oddities()
    server = odd_server(odd)
    federation.upstreams.append(server)
    federation.register("Odd", server)

    odd.garbage = 1
    with pytest.raises(UpstreamError, match="not a valid") as failed:
        federation.call("odd__add", {"a": 1, "b": 2})
    assert failed.value.code == types.INTERNAL_ERROR
    assert odd.garbled == 1
    # The connection stays: the next call is answered at once.
    result = federation.call("odd__add", {"a": 1, "b": 2})
    assert text_of(result) == "3"
    health = federation.server("odd")["health"]
    assert health["status"] == "healthy", health

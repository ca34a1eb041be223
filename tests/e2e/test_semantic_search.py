"""Tool search's semantic leg end to end: a real gateway (both databases)
with the leg on, real MCP servers of the catalog, the `mcp` SDK's client
over /mcp. A query that shares no word with its tool -- which no lexical
ranker can find -- is found once the leg has loaded (on the first search,
in the background). Needs the extra ``switchboard[semantic]``."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from bench.search_corpus import corpus
from registry.search_words import terms
from registry.tool_index import document, fields
from registry.tool_ranker import FIELDS
from tests.support.catalog_servers import catalog_server
from tests.support.gateway import Gateway, start_gateway
from tests.support.mcp_clients import MODES, mcp_client
from tests.support.semantic import skip_unless_installed
from tests.support.servers import stop_all
from tests.support.waiting import wait_for

skip_unless_installed()

SERVERS = ("weather", "maps", "clock", "iot")
QUERY, RIGHT = "is it going to rain in Lisbon this weekend", "weather__forecast"


@pytest.fixture(scope="module")
def gateway(
    tmp_path_factory: pytest.TempPathFactory, module_database_url: str | None
) -> Iterator[Gateway]:
    tmp_path = tmp_path_factory.mktemp("semantic-search")
    running = start_gateway(tmp_path / "data", module_database_url, mcp_tool_search_semantic=True)
    servers = []
    try:
        for name in SERVERS:
            server = catalog_server(name)
            servers.append(server)
            with running.client() as admin:
                added = admin.post("/mcp-servers", json={"name": name, "url": server.url + "/mcp"})
                assert added.status_code == 201, added.text
        yield running
    finally:
        stop_all(*servers)
        running.server.stop()


def search(gateway: Gateway, query: str) -> list[str]:
    token = gateway.token("alice")

    async def run() -> Any:
        async with mcp_client(gateway.url + "/mcp", token, MODES[0]) as client:
            return await client.call_tool("switchboard__search_tools", {"query": query})

    result = gateway.server.run(run())
    assert not result.is_error, result.content
    return [t["name"] for t in json.loads(result.content[0].text)["tools"]]


def test_a_paraphrase_sharing_no_word_with_its_tool_is_found(gateway: Gateway) -> None:
    _, description, params = next(t for t in corpus()["weather"] if t[0] == RIGHT.split("__")[1])
    schema = {"properties": {k: {"description": v} for k, v in params.items()}}
    indexed = {
        t for f in FIELDS for t in fields(document(RIGHT, None, description, schema)).terms_of(f)
    }
    assert not set(terms(QUERY)) & indexed  # the lexical ranker cannot find it

    # The leg loads on the first search and embeds the tools in the
    # background; until then search is lexical.
    def answer() -> list[str] | None:
        names = search(gateway, QUERY)
        return names if RIGHT in names else None

    assert len(wait_for(answer, 120, what=f"{RIGHT} found for {QUERY!r}")) <= 5

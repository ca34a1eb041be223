"""Published MCP servers' tools, as a second corpus for `bench.tool_search`
(``--corpus published``): 12 servers' tool definitions copied from their
public source (each module names its repository, path and commit), never
seen by the ranker while it was written or tuned, with the queries of
`bench.corpora.published.queries`.
"""

from __future__ import annotations

from typing import Any

from bench.corpora.published import github, notion, playwright, reference, sentry, supabase
from bench.search_corpus import definitions
from bench.tool_catalog import Tool


def corpus() -> dict[str, list[Tool]]:
    """Every server's tools, by server."""
    return {
        **github.SERVERS,
        **sentry.SERVERS,
        **playwright.SERVERS,
        **reference.SERVERS,
        **supabase.SERVERS,
        **notion.SERVERS,
    }


def corpus_tools() -> list[dict[str, Any]]:
    """The corpus as MCP tool definitions, under their federated names."""
    return definitions(corpus())

"""Tool search's index and `ToolSearch` on a real database (SQLite, and the
local PostgreSQL): the answer is always among the caller's own tools, however
many they have and however well others' tools match; the index follows the
catalog (a changed description, a removed tool); odd queries find nothing
rather than fail; the labelled catalog is ranked as `bench.tool_search`
measured."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Sequence
from typing import Any

import mcp_types as types
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from bench.search_corpus import corpus_tools
from bench.search_queries import HELD_OUT, TUNING
from bench.tool_catalog import tools
from bench.tool_search import RANKED, as_tools, documents, grown, scores
from gateway.mcp import tool_search
from gateway.mcp.tool_search import ToolSearch
from registry.tool_index import SqlToolIndex, ToolDocument, document


class Catalog:
    """A catalog whose documents a test replaces (a new key each time)."""

    def __init__(self, defs: Sequence[dict[str, Any]]) -> None:
        self.replace(defs)

    def replace(self, defs: Sequence[dict[str, Any]]) -> None:
        self.key: tuple[object, ...] = (object(),)
        self.docs: list[ToolDocument] = documents(defs)

    async def __call__(self) -> Any:
        docs = self.docs
        return self.key, lambda: docs


async def test_the_answer_is_the_callers_own_however_many_match(engine: AsyncEngine) -> None:
    every = grown(corpus_tools(), 5000)
    search = ToolSearch(SqlToolIndex(engine), Catalog(every))
    # The caller may call 600 tools of copies 10 to 14: thousands of others
    # match "list" as well or better.
    theirs = as_tools([d for d in every if d["name"].split("__")[0][-2:] in {"10", "11", "12"}])
    assert len(theirs) > 500
    found = await search.search("list open pull requests", theirs, 5)
    names = {t.name for t in theirs}
    assert len(found) == 5 and all(t.name in names for t in found)
    assert found[0].name.endswith("__list_pull_requests")
    few = theirs[:40]
    assert {t.name for t in await search.search("list", few, 20)} <= {t.name for t in few}
    assert await search.search("list", [], 5) == []


async def test_the_index_follows_the_catalog(
    engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    defs = tools()[:20]
    catalog = Catalog(defs)
    index = SqlToolIndex(engine)
    search = ToolSearch(index, catalog)
    offered = as_tools(defs)
    assert [t.name for t in await search.search("phone number", offered, 1)] == [
        "crm__find_contact"
    ]
    # A description changed upstream: ranked by its new words.
    changed = [
        {**d, "description": "Translate a paragraph into Klingon."}
        if d["name"] == "crm__log_activity"
        else d
        for d in defs
    ]
    catalog.replace(changed)
    assert [t.name for t in await search.search("klingon", as_tools(changed), 5)] == [
        "crm__log_activity"
    ]
    # A removed tool is never answered (the caller's listing no longer has
    # it), and leaves the index once it has stayed gone.
    catalog.replace(changed[1:])
    found = await search.search("phone number", as_tools(changed[1:]), 5)
    assert "crm__find_contact" not in [t.name for t in found]
    assert "crm__find_contact" in await index.held()  # not yet: another replica may lag
    monkeypatch.setattr(tool_search, "PRUNE_AFTER_SECONDS", 0.0)
    catalog.replace(changed[1:])
    await search.search("anything", offered, 1)
    assert "crm__find_contact" not in await index.held()


class _Listing(list[types.Tool]):
    """A caller's listing that a weak reference can watch."""


async def test_listings_of_a_replaced_catalog_are_let_go(engine: AsyncEngine) -> None:
    """Tool search keeps each listing's map while the catalog stands
    (`gateway.mcp.listing_names`); once it changes, the old listings (and
    the tools only they hold) are not kept alive by it."""
    defs = tools()[:20]
    catalog = Catalog(defs)
    search = ToolSearch(SqlToolIndex(engine), catalog)
    old = _Listing(as_tools(defs))
    watched = weakref.ref(old)
    assert await search.search("phone number", old, 1)
    del old
    catalog.replace(defs)
    assert await search.search("phone number", _Listing(as_tools(defs)), 1)
    gc.collect()
    assert watched() is None


@pytest.mark.parametrize(
    "query",
    [
        "the and of",
        "!!! ??? ---",
        "² ½ \ufb01 \U0001d7d8",
        '" OR NEAR(',
        "x" * 400,
        "é" * 64 + " ünïcödé",
    ],
)
async def test_odd_queries_find_nothing_or_something_but_never_fail(
    engine: AsyncEngine, query: str
) -> None:
    defs = tools()[:30]
    search = ToolSearch(SqlToolIndex(engine), Catalog(defs))
    found = await search.search(query, as_tools(defs), 5)
    assert len(found) <= 5


async def test_the_labelled_corpus_ranks_as_measured(engine: AsyncEngine) -> None:
    defs = corpus_tools()
    search = ToolSearch(SqlToolIndex(engine), Catalog(defs))
    offered: list[types.Tool] = as_tools(defs)
    for queries, least in ((HELD_OUT, 0.74), (TUNING, 0.84)):
        rankings = [
            ([t.name for t in await search.search(q, offered, RANKED)], right)
            for q, right in queries
        ]
        recall, _ndcg, _mrr = scores(rankings)
        # bench.tool_search: 0.764 held out, 0.861 tuning, on both databases.
        assert recall >= least, (recall, least)


async def test_a_second_replica_ranks_what_the_first_wrote(engine: AsyncEngine) -> None:
    """The ranker is loaded from the table's rows, not from what this
    replica wrote: another replica's index answers alike, and a document it
    changed is reloaded by digest."""
    defs = tools()[:30]
    first, second = SqlToolIndex(engine), SqlToolIndex(engine)
    await first.put(documents(defs))
    await first.refresh()
    await second.refresh()
    names = [d["name"] for d in defs]
    assert await second.search("phone number", names, 5) == await first.search(
        "phone number", names, 5
    )
    changed = {**defs[0], "description": "Translate a paragraph into Klingon."}
    await first.put(documents([changed]))
    await second.refresh()
    assert [n for n, _ in await second.search("klingon", names, 5)] == [defs[0]["name"]]
    await first.remove([defs[0]["name"]])
    await second.refresh()
    assert await second.search("klingon", names, 5) == []


def test_a_document_reads_its_name_title_description_and_parameters() -> None:
    doc = document(
        "crm__findContact-v2",
        "Find a contact",
        "Look up a person.",
        {"properties": {"phone_number": {"description": "digits only"}}},
        extra=("sales",),
    )
    assert doc.name_words == "crm find Contact v2"
    assert doc.description == "Look up a person. sales"
    assert doc.params == "phone number digits only"
    assert document("x", None, None, {"properties": []}).params == ""

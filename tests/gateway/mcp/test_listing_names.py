"""Tool search's map of a caller's listing (`gateway.mcp.listing_names`):
shared by listings of the very same tools, never by a list of others."""

from __future__ import annotations

import gc
import weakref

import mcp_types as types
import pytest

from gateway.mcp import listing_names
from gateway.mcp.listing_names import ListingNames

SEARCH = "switchboard__search_tools"


def tool(name: str) -> types.Tool:
    return types.Tool(name=name, input_schema={"type": "object"})


def test_callers_with_the_same_tools_share_one_map() -> None:
    tools = [tool(f"s__t{i}") for i in range(100)]
    names = ListingNames((SEARCH,))
    # Each caller's listing is a list of its own, of the very same objects.
    found = [names.of(list(tools)) for _ in range(40)]
    assert all(f is found[0] for f in found)
    assert found[0].names == {t.name for t in tools}
    assert all(found[0].by_name[t.name] is t for t in tools)


def test_the_gateways_own_tools_are_left_out() -> None:
    search = tool(SEARCH)
    mine = ListingNames((SEARCH,)).of([search, tool("s__a")])
    assert mine.names == {"s__a"} and SEARCH not in mine.by_name


def test_a_list_of_other_objects_under_the_same_names_has_its_own_map() -> None:
    """A caller whose tool is another object (a copy without its app, say)
    gets its own object back, never another caller's."""
    tools = [tool("s__a"), tool("s__b")]
    theirs = [tools[0], tool("s__b")]
    names = ListingNames(())
    first, second = names.of(list(tools)), names.of(theirs)
    assert first is not second
    assert second.by_name["s__b"] is theirs[1] and first.by_name["s__b"] is tools[1]


def test_the_same_list_again_is_its_own_kept_map() -> None:
    tools = [tool("s__a")]
    names = ListingNames(())
    assert names.of(tools) is names.of(tools)


def test_maps_kept_are_bounded_and_cleared() -> None:
    names = ListingNames(())
    kept = [[tool(f"s__t{i}")] for i in range(listing_names.CONTENTS_KEPT + 5)]
    first = names.of(kept[0])
    for listing in kept[1:]:
        names.of(listing)
    # The oldest content was let go: a list of it works out a new map.
    assert names.of(list(kept[0])) is not first
    again = names.of(kept[-1])
    names.clear()
    assert names.of(kept[-1]) is not again


def test_contents_kept_go_least_recently_used_first(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(listing_names, "CONTENTS_KEPT", 3)
    names = ListingNames(())
    tools = [[tool(f"s__t{i}")] for i in range(4)]
    kept = [names.of(list(t)) for t in tools[:3]]
    assert names.of(list(tools[0])) is kept[0]  # another caller's list of it: now the most recent
    names.of(list(tools[3]))  # one over the bound: the least recently used goes
    assert names.of(list(tools[0])) is kept[0]
    assert names.of(list(tools[1])) is not kept[1]


class _Listing(list[types.Tool]):
    """A caller's listing that a weak reference can watch."""


def test_lists_let_go_are_not_kept_alive(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(listing_names, "LISTS_KEPT", 3)
    monkeypatch.setattr(listing_names, "CONTENTS_KEPT", 1)
    names = ListingNames(())
    first = _Listing([tool("s__a")])
    watched = weakref.ref(first)
    names.of(first)
    del first
    for i in range(4):
        names.of(_Listing([tool(f"s__t{i}")]))
    gc.collect()
    assert watched() is None
    kept = _Listing([tool("s__b")])
    names.of(kept)
    watched = weakref.ref(kept)
    del kept
    names.clear()
    gc.collect()
    assert watched() is None


def test_a_content_in_use_stays_shared_while_others_pass_by(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A caller searching on with its own list keeps the map its content's
    other callers share, however many other contents come and go."""
    monkeypatch.setattr(listing_names, "CONTENTS_KEPT", 2)
    names = ListingNames(())
    tools = [tool("s__a")]
    searching = list(tools)
    shared = names.of(searching)
    for i in range(5):
        names.of([tool(f"s__t{i}")])
        assert names.of(searching) is shared
    assert names.of(list(tools)) is shared  # another caller of the same tools


def test_a_list_in_use_is_kept_past_the_bound(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(listing_names, "LISTS_KEPT", 2)
    monkeypatch.setattr(listing_names, "CONTENTS_KEPT", 1)
    names = ListingNames(())
    first, second = _Listing([tool("s__a")]), _Listing([tool("s__b")])
    kept = names.of(first)
    names.of(second)
    assert names.of(first) is kept  # used again: the other is now the oldest
    watched = weakref.ref(second)
    del second
    names.of([tool("s__c")])
    gc.collect()
    assert watched() is None and names.of(first) is kept


def test_contents_are_equal_by_their_ids_not_by_their_hash() -> None:
    """The key is hashed once; two lists of other ids whose hashes collide
    are still two keys (a collision must not give one caller's map to
    another)."""
    first = listing_names.Content((1, 2, 3))
    assert first == listing_names.Content((1, 2, 3))
    assert hash(first) == hash(listing_names.Content((1, 2, 3)))
    colliding = listing_names.Content((3, 2, 1))
    colliding._hash = first._hash  # as if the two hashes collided
    kept = {first: "first's"}
    assert colliding not in kept and kept.get(listing_names.Content((1, 2, 3))) == "first's"

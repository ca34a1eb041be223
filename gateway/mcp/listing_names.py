"""A caller's listing by name, for tool search: worked out once per listing
and shared by listings of the very same tools.

A search ranks only the tools the caller's own listing offers
(`gateway.mcp.tool_search`): it needs the listing's names as a set (the
lexical ranker's and the semantic leg's ``among``) and its tools by name (the
answer). A caller's listing is the same list object while it stands
(`gateway.mcp.per_caller`), so both are kept per list. Callers with the same
rights have lists of the very same tool objects (`FederatedTool.as_mcp_tool`
gives one object per tool), one list each: those share one map and one set
of names (an agent's skill is one tool object per registry snapshot too,
`AgentSkillTools`; a virtual server's copy of a tool without its app is each
caller's own, and is not shared). Worked out per caller instead, 32 callers
of 10,000 tools searching at once took 2.3-2.5x the gateway's CPU a search
of one caller (docs/performance.md), and the semantic leg, which keeps a
caller's rows by the set's identity, worked them out again on every search.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass

import mcp_types as types

from gateway.mcp.per_caller import CALLERS_KEPT
from registry.semantic_leg import ROWS_KEPT

# Lists whose maps are kept: as many as the callers whose listings are, each
# entry only references; the maps themselves per distinct list of tools, as
# many as the semantic leg keeps rows for.
LISTS_KEPT = CALLERS_KEPT
CONTENTS_KEPT = ROWS_KEPT


class Content:
    """A list's tools' ids, in order: the key its maps are kept by. Hashed
    once: a tuple's hash is worked out at every lookup, and this one's ids
    are a whole catalog's (at 10,000 tools, two lookups a search were 4 %
    of the gateway's samples under `bench.tool_catalog`)."""

    __slots__ = ("_hash", "ids")

    def __init__(self, ids: tuple[int, ...]) -> None:
        self.ids = ids
        self._hash = hash(ids)

    def __hash__(self) -> int:
        return self._hash

    def __eq__(self, other: object) -> bool:
        return self is other or (isinstance(other, Content) and self.ids == other.ids)


@dataclass(frozen=True, eq=False)
class Names:
    """A list of tools by name, and its names."""

    # The first list they were worked out from, kept with them: the ids
    # `ListingNames` keys them by stay its objects' own while they are kept.
    tools: Sequence[types.Tool]
    content: Content  # the key they are kept by
    by_name: dict[str, types.Tool]
    names: frozenset[str]


class ListingNames:
    """Each list of tools by name, ``left_out`` aside (the gateway's own
    search tools, which never answer a search)."""

    def __init__(self, left_out: Collection[str]) -> None:
        self._left_out = frozenset(left_out)
        self._lists: dict[int, tuple[Sequence[types.Tool], Names]] = {}
        self._contents: dict[Content, Names] = {}

    def clear(self) -> None:
        """Forget every list (the catalog changed: each caller's is new)."""
        self._lists.clear()
        self._contents.clear()

    def of(self, offered: Sequence[types.Tool]) -> Names:
        # Each kept dict is least recently used first: a hit moves to the
        # end, the list's and its content's (which other callers share).
        kept = self._lists.pop(id(offered), None)
        names = kept[1] if kept is not None and kept[0] is offered else self._of_content(offered)
        self._lists[id(offered)] = (offered, names)
        self._contents[names.content] = self._contents.pop(names.content, names)
        while len(self._lists) > LISTS_KEPT:
            del self._lists[next(iter(self._lists))]
        while len(self._contents) > CONTENTS_KEPT:
            del self._contents[next(iter(self._contents))]
        return names

    def _of_content(self, offered: Sequence[types.Tool]) -> Names:
        """The maps of a list of these very objects, kept or worked out now
        (by identity only: a list holding any other object, a copy of a tool
        without its app say, has maps of its own)."""
        content = Content(tuple(map(id, offered)))
        names = self._contents.get(content)
        if names is None:
            by_name = {t.name: t for t in offered if t.name not in self._left_out}
            names = Names(offered, content, by_name, frozenset(by_name))
        return names

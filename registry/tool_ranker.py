"""Ranking tools for a query: BM25F (Robertson, Zaragoza and Taylor,
"Simple BM25 extension to multiple weighted fields", CIKM 2004) over a
tool's fields, in memory, kept in step one document at a time.

Why BM25F and not the databases' own full-text ranks: a query word must
count by how rare it is across the catalog (inverse document frequency:
"time" in a dozen tools says less than "pacific" in one), by how much of a
short field it fills (length normalisation), and a word repeated must not
count without bound (term saturation) -- SQLite's FTS5 has the first two
per column but sums columns separately, PostgreSQL's `ts_rank` has none of
them; and the two databases must rank alike, which one ranker over the
same rows gives by construction.

Fields, most telling first: the tool's own name (``find_contact`` of
``crm__find_contact``) and its title; its description; its server's name
(``crm``: every tool of the server has it); its parameters' names and
descriptions, which say what a tool takes, not what it does ("what is
inside" of a customs declaration is not about time).
"""

from __future__ import annotations

import heapq
import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence, Set
from dataclasses import dataclass

from registry.search_words import initials, terms, written_initials

# A term more than one tool in this many has is common (`ToolRanker.rank`).
COMMON_SHARE = 8
FIELDS = ("tool", "title", "description", "server", "params", "initials")


@dataclass(frozen=True)
class Weights:
    """Per field: its weight, and its length normalisation ``b`` (0: none,
    1: full); ``k1``: how fast a term's weight saturates; ``coord``: how
    much a tool matching more of the query's terms is preferred (its score
    times the share of the terms it matched to this power)."""

    weight: Mapping[str, float]
    b: Mapping[str, float]
    k1: float = 1.2
    coord: float = 0.0

    def __post_init__(self) -> None:
        # `ToolRanker.rank` skips tools by an upper bound on what the terms
        # not yet read can add (MaxScore): exact only if no term subtracts.
        for name, table in (("weight", self.weight), ("b", self.b)):
            if set(table) != set(FIELDS):
                raise ValueError(f"{name} must name each of {', '.join(FIELDS)}")
        if any(not 0 <= value < math.inf for value in self.weight.values()):
            # (Finite too: an infinite weight makes scores NaN, which no cut orders.)
            raise ValueError(f"field weights must be >= 0 and finite: {dict(self.weight)}")
        if any(not 0 <= value <= 1 for value in self.b.values()):
            raise ValueError(f"b must be within 0..1: {dict(self.b)}")
        if not self.k1 > 0 or not self.coord >= 0:
            raise ValueError(f"k1 must be > 0 and coord >= 0 (k1 {self.k1}, coord {self.coord})")


# Chosen on the tuning split of `bench.tool_search` by a grid over each
# weight, k1 and b (docs/performance.md), from the plateau's middle rather
# than its best corner: the held-out split was not looked at.
WEIGHTS = Weights(
    weight={
        "tool": 2.0,
        "title": 2.0,
        "description": 1.0,
        "server": 0.6,
        "params": 0.6,
        "initials": 1.0,
    },
    b={
        "tool": 0.3,
        "title": 0.3,
        "description": 0.75,
        "server": 0.0,
        "params": 0.75,
        "initials": 0.0,
    },
    coord=1.0,  # Lucene's classic coord: neutral on the tuning split, so its textbook value
)


@dataclass(frozen=True)
class Fields:
    """One tool's text, field by field (`FIELDS`; its name's initials are
    worked out from ``tool``, `registry.search_words.initials`)."""

    name: str
    tool: str
    title: str
    description: str
    server: str
    params: str

    def terms_of(self, field: str) -> list[str]:
        if field == "initials":
            return initials(self.tool)
        text: str = getattr(self, field)
        return terms(text)


class ToolRanker:
    """An inverted index of tools' terms per field, changed one tool at a
    time (`put`, `remove`), ranking any subset of its tools (`rank`)."""

    def __init__(self, weights: Weights = WEIGHTS) -> None:
        self._weights = weights
        # term -> tool name -> the term's count in each field (FIELDS order)
        self._postings: dict[str, dict[str, tuple[int, ...]]] = {}
        self._lengths: dict[str, tuple[int, ...]] = {}
        self._terms: dict[str, frozenset[str]] = {}  # what `remove` must take out
        self._shared: dict[tuple[int, ...], tuple[int, ...]] = {}
        self._cache: dict[str, dict[str, float]] = {}  # term -> tool -> weight
        self._max_cache: dict[str, float] = {}  # term -> its largest weight
        self._total = [0] * len(FIELDS)

    def __len__(self) -> int:
        return len(self._lengths)

    def names(self) -> list[str]:
        return list(self._lengths)

    def put(self, fields: Fields) -> None:
        """Index ``fields`` (replacing the tool's earlier text, if any)."""
        self.remove(fields.name)
        self._cache.clear()
        self._max_cache.clear()
        counts = [Counter(fields.terms_of(f)) for f in FIELDS]
        counted = tuple(sum(c.values()) for c in counts)
        lengths = self._shared.setdefault(counted, counted)
        own = frozenset().union(*counts)
        for term in own:
            tf = tuple(c[term] for c in counts)
            # Most are alike ((0, 0, 1, 0, 0, 0)...): one tuple each, shared
            # (and so are the fields' lengths).
            shared = self._shared.setdefault(tf, tf)
            self._postings.setdefault(term, {})[fields.name] = shared
        self._lengths[fields.name] = lengths
        self._terms[fields.name] = own
        self._total = [t + n for t, n in zip(self._total, lengths, strict=True)]

    def remove(self, name: str) -> None:
        lengths = self._lengths.pop(name, None)
        if lengths is None:
            return
        self._cache.clear()
        self._max_cache.clear()
        self._total = [t - n for t, n in zip(self._total, lengths, strict=True)]
        for term in self._terms.pop(name):
            del self._postings[term][name]
            if not self._postings[term]:
                del self._postings[term]

    def rank(self, query: str, among: Iterable[str], limit: int) -> list[tuple[str, float]]:
        """The best ``limit`` of the tools named ``among`` for ``query``,
        with their scores (higher is better; ties by name); a tool sharing
        no term with the query is not an answer."""
        if limit <= 0:
            return []
        wanted = among if isinstance(among, (set, frozenset)) else set(among)
        asked = list(dict.fromkeys([*terms(query), *written_initials(query)]))
        weights = [self._weights_of(term) for term in asked]
        # A term most tools have ("task" in every "Does task N") would have
        # every tool scored; its weight is nearly nil (IDF). The tools that
        # have a rarer term are scored first; the others only if what they
        # could reach with the common terms alone is not below the last of
        # those best (MaxScore: Turtle and Flood, 1995). Same answer, exactly.
        bound = max(len(self._lengths) // COMMON_SHARE, limit)
        common = [t for t, w in zip(asked, weights, strict=True) if len(w) > bound]
        if common and len(common) < len(asked):
            found = self._rank_rarer_first(asked, weights, common, wanted, limit)
            if found is not None:
                return found
        return self._best(self._scores(asked, weights, self._matching(weights, wanted)), limit)

    def _rank_rarer_first(
        self,
        asked: Sequence[str],
        weights: Sequence[dict[str, float]],
        common: Sequence[str],
        wanted: Set[str],
        limit: int,
    ) -> list[tuple[str, float]] | None:
        """`rank`'s answer from the tools that have a rarer term, or None
        when a tool with only common terms could be among the best."""
        rarer = [w for t, w in zip(asked, weights, strict=True) if t not in common]
        candidates = self._matching(rarer, wanted)
        best = self._best(self._scores(asked, weights, candidates), limit)
        if len(best) < limit:
            return None
        reach = sum(self._max_weight(term) for term in common)
        reach *= (len(common) / len(asked)) ** self._weights.coord
        return best if reach < best[-1][1] else None

    @staticmethod
    def _matching(weights: Sequence[dict[str, float]], wanted: Set[str]) -> set[str]:
        """The tools of ``wanted`` with any of these terms."""
        found: set[str] = set()
        for term_weights in weights:
            # Whichever is shorter: a caller who may call 300 of 10,000
            # tools is not made to walk a common term's thousands of tools.
            # (Not `keys() & wanted`: with a frozenset, which the search
            # passes, CPython walks all of ``wanted`` whatever the sizes.)
            if len(term_weights) <= len(wanted):
                found.update(n for n in term_weights if n in wanted)
            else:
                found.update(n for n in wanted if n in term_weights)
        return found

    def _scores(
        self, asked: Sequence[str], weights: Sequence[dict[str, float]], names: Iterable[str]
    ) -> dict[str, float]:
        if not asked:
            return {}  # (no term: no tool has one)
        # The share of the query's terms a tool has, to the power ``coord``:
        # one value per count of terms matched, worked out once.
        share = [(matched / len(asked)) ** self._weights.coord for matched in range(len(asked) + 1)]
        getters = [term_weights.get for term_weights in weights]
        scores: dict[str, float] = {}
        for name in names:
            summed, matched = 0.0, 0
            for get in getters:  # in the query's order: the same sum, to the bit
                weight = get(name)
                if weight is not None:
                    summed += weight
                    matched += 1
            scores[name] = summed * share[matched]
        return scores

    @staticmethod
    def _best(scores: Mapping[str, float], limit: int) -> list[tuple[str, float]]:
        """The ``limit`` best by score, ties by name. Scores tie a lot (tools
        alike in their counts and lengths score alike): the ``limit``-th
        score is found among the bare floats, those above it are taken
        whole, and of those at it only the first names needed."""
        if len(scores) <= limit:
            return sorted(scores.items(), key=_by_score_then_name)
        cut = sorted(scores.values(), reverse=True)[limit - 1]
        above = sorted(((n, s) for n, s in scores.items() if s > cut), key=_by_score_then_name)
        at = heapq.nsmallest(limit - len(above), (n for n, s in scores.items() if s == cut))
        return above + [(name, cut) for name in at]

    def _max_weight(self, term: str) -> float:
        """The largest of ``term``'s weights, kept as long as they are."""
        found = self._max_cache.get(term)
        if found is None:
            found = self._max_cache[term] = max(self._weights_of(term).values(), default=0.0)
        return found

    def _weights_of(self, term: str) -> dict[str, float]:
        """Each tool's BM25F weight for ``term``, worked out once per term
        until a tool is put or removed (rarity and average lengths change)."""
        cached = self._cache.get(term)
        if cached is not None:
            return cached
        tools = self._postings.get(term)
        if not tools:
            return {}  # not kept: a caller's made-up words must not grow the cache
        count = len(self._lengths)
        # BM25's IDF, floored at 0 by the +1 (Lucene's form): a term in
        # most tools adds almost nothing, never a penalty.
        idf = math.log(1 + (count - len(tools) + 0.5) / (len(tools) + 0.5))
        norms = self._norms()
        k1 = self._weights.k1
        # A tool's weight is a function of its counts and its fields'
        # lengths, which most tools share with many others (tuples kept
        # once each, `put`): each pair is worked out once, not per tool --
        # the first search after a server's thousand tools are added walks
        # a common term's ten thousand tools.
        alike: dict[tuple[tuple[int, ...], tuple[int, ...]], float] = {}
        weights: dict[str, float] = {}
        for name, tf in tools.items():
            lengths = self._lengths[name]
            weight = alike.get((tf, lengths))
            if weight is None:
                pseudo = sum(
                    w * n / (1 - b + b * length / avg) if avg else 0.0
                    for n, length, (w, b, avg) in zip(tf, lengths, norms, strict=True)
                    if n
                )
                weight = alike[tf, lengths] = idf * pseudo / (k1 + pseudo)
            weights[name] = weight
        self._cache[term] = weights
        return weights

    def _norms(self) -> Sequence[tuple[float, float, float]]:
        count = max(len(self._lengths), 1)
        return [
            (self._weights.weight[f], self._weights.b[f], self._total[i] / count)
            for i, f in enumerate(FIELDS)
        ]


def _by_score_then_name(item: tuple[str, float]) -> tuple[float, str]:
    return -item[1], item[0]

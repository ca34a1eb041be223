"""The ranker of tool search (`registry.tool_ranker`, BM25F) on small
hand-made catalogs: each property of the scoring, on its own."""

from __future__ import annotations

import dataclasses
import itertools
import random
from typing import Any
from unittest import mock

import pytest

from registry.search_words import terms, written_initials
from registry.tool_ranker import WEIGHTS, Fields, ToolRanker


def tool(name: str, description: str = "", params: str = "", title: str = "") -> Fields:
    server, _, own = name.partition("__")
    return Fields(name, own, title, description, server, params)


def ranker(*tools: Fields) -> ToolRanker:
    r = ToolRanker()
    for t in tools:
        r.put(t)
    return r


def order(r: ToolRanker, query: str, limit: int = 10) -> list[str]:
    return [name for name, _ in r.rank(query, r.names(), limit)]


def test_a_rare_word_outweighs_a_common_one() -> None:
    r = ranker(
        tool("a__x", "common word here"),
        tool("b__x", "common word there"),
        tool("c__x", "common and rare"),
        tool("d__x", "common rare"),
        tool("e__x", "common"),
    )
    # "rare" is in two tools, "common" in all five: a tool with "rare" wins.
    assert set(order(r, "common rare")[:2]) == {"c__x", "d__x"}


def test_a_repeated_word_saturates() -> None:
    r = ranker(
        tool("a__x", "invoice " * 50),
        tool("b__x", "invoice refund"),
        tool("c__x", "other"),
    )
    scores = dict(r.rank("invoice refund", ["a__x", "b__x"], 2))
    assert scores["b__x"] > scores["a__x"]  # fifty "invoice" are not worth one "refund"


def test_a_short_description_beats_a_long_one_with_the_same_word() -> None:
    r = ranker(
        tool("a__x", "refund " + "lorem ipsum dolor " * 20),
        tool("b__x", "refund a payment"),
        tool("c__x", "other"),
    )
    assert order(r, "refund") == ["b__x", "a__x"]


def test_the_name_weighs_more_than_the_description_and_that_more_than_parameters() -> None:
    r = ranker(
        tool("a__x", "other", params="invoice"),
        tool("b__invoice", "other"),
        tool("c__x", "invoice"),
        tool("d__x", "other"),
    )
    assert order(r, "invoice") == ["b__invoice", "c__x", "a__x"]


def test_issue_54_parameter_text_does_not_outrank_a_tool_about_the_query() -> None:
    r = ranker(
        tool(
            "shipping__customs_declaration",
            "Prepare the customs declaration for an international parcel.",
            "contents what is inside value declared value",
        ),
        tool(
            "clock__convert_time_zone",
            "Convert a date and time from one time zone to another.",
            "time the time to convert from zone source zone",
        ),
        tool("hr__approve_time_off", "Approve or reject a leave request.", "request approve"),
    )
    names = ["shipping__customs_declaration", "clock__convert_time_zone", "hr__approve_time_off"]
    ranked = [n for n, _ in r.rank("what time is 9am Pacific in Berlin", names, 3)]
    assert ranked[0] == "clock__convert_time_zone"
    assert "shipping__customs_declaration" not in ranked  # no telling word in common


def test_only_the_tools_asked_about_are_ranked_and_none_without_a_shared_word() -> None:
    r = ranker(tool("a__x", "refund"), tool("b__x", "refund"), tool("c__x", "other"))
    assert order(r, "refund") == ["a__x", "b__x"]  # ties by name
    assert [n for n, _ in r.rank("refund", ["b__x", "c__x"], 5)] == ["b__x"]
    assert r.rank("refund", [], 5) == []
    assert r.rank("the of and", ["a__x"], 5) == []
    assert order(r, "refund", limit=1) == ["a__x"]


def test_a_tool_put_again_is_replaced_and_a_removed_one_is_gone() -> None:
    r = ranker(tool("a__x", "refund"), tool("b__x", "invoice"))
    r.put(tool("a__x", "klingon"))
    assert order(r, "refund") == []
    assert order(r, "klingon") == ["a__x"]
    r.remove("a__x")
    r.remove("a__x")  # twice: nothing to do
    assert order(r, "klingon") == []
    assert len(r) == 1
    r.remove("b__x")
    assert len(r) == 0 and order(r, "invoice") == []


def test_scores_do_not_depend_on_the_order_tools_were_put_in() -> None:
    tools = [tool(f"{s}__x", f"refund invoice {s} " * (i + 1)) for i, s in enumerate("abcdef")]
    forward, backward = ranker(*tools), ranker(*reversed(tools))
    assert forward.rank("refund a", [t.name for t in tools], 6) == backward.rank(
        "refund a", [t.name for t in tools], 6
    )


def test_words_no_tool_has_are_not_remembered() -> None:
    r = ranker(tool("a__x", "refund"))
    for i in range(1000):
        assert r.rank(f"refund zz{i}", ["a__x"], 5)[0][0] == "a__x"
    assert len(r._cache) == 1  # "refund" alone


WORDS = tuple(
    [
        "refund",
        "invoice",
        "stock",
        "ship",
        "deal",
        "ticket",
        "page",
        "merge",
        "lead",
        "quote",
        "order",
        "carrier",
        "sprint",
        "alert",
        "deploy",
        "backup",
        "flight",
        "hotel",
        "contract",
        "secret",
        "campaign",
        "payroll",
        "badge",
        "survey",
    ]
)


def common_word_catalog(size: int, seed: int) -> ToolRanker:
    """``size`` tools that all say "task" (as `bench.tool_catalog`'s do), a
    fifth of them "sync" in their names, and one or two rarer words each,
    repeated at random, in their description or among their parameters."""
    rng = random.Random(seed)
    described = []
    for i in range(size):
        words = " ".join(rng.sample(WORDS, rng.randint(1, 2)) * rng.randint(1, 3))
        name = f"s{i % 7}__{'sync' if i % 5 == 0 else 'tool'}_{i}"
        if rng.random() < 0.2:
            described.append(tool(name, "does task " + words))
        else:
            described.append(tool(name, "does task", params=f"{words} and more words " * 3))
    return ranker(*described)


@pytest.mark.parametrize("seed", range(4))
def test_scoring_the_rarer_terms_first_gives_every_tools_answer(seed: int) -> None:
    """`rank` scores the tools with a rarer term first and the others only
    if they could be among the best: the answer is the one scoring every
    tool gives (no term common: each tool scored), to the bit -- also where
    a tool with only the common words ("sync" in its name) is among the best."""
    r = common_word_catalog(120, seed)
    for among in (r.names(), r.names()[::3]):
        for word, limit in itertools.product(WORDS, (1, 3, 5, 8)):
            for query in (f"sync {word}", f"task sync {word}", f"task {word}"):
                with mock.patch("registry.tool_ranker.COMMON_SHARE", 10**9):
                    every = r.rank(query, among, limit)
                assert r.rank(query, among, limit) == every, (query, limit)


def test_a_word_every_tool_has_does_not_have_every_tool_scored() -> None:
    r = common_word_catalog(400, 1)
    scored: list[int] = []
    real = ToolRanker._scores

    def counting(self: ToolRanker, asked: Any, weights: Any, names: Any) -> dict[str, float]:
        found = real(self, asked, weights, names)
        scored.append(len(found))
        return found

    with mock.patch.object(ToolRanker, "_scores", counting):
        best = r.rank("task refund", r.names(), 5)
    assert len(best) == 5 and scored and max(scored) < 400


@pytest.mark.parametrize(
    ("change", "says"),
    [
        ({"weight": {**WEIGHTS.weight, "params": -0.1}}, "field weights must be >= 0"),
        ({"weight": {**WEIGHTS.weight, "params": float("nan")}}, "field weights must be >= 0"),
        ({"weight": {**WEIGHTS.weight, "tool": float("inf")}}, "and finite"),
        ({"b": {**WEIGHTS.b, "tool": 1.5}}, "b must be within 0..1"),
        ({"weight": {"tool": 1.0}}, "weight must name each of"),
        ({"k1": 0.0}, "k1 must be > 0"),
        ({"coord": -1.0}, "coord >= 0"),
    ],
)
def test_weights_that_would_make_the_ranking_inexact_are_refused(
    change: dict[str, Any], says: str
) -> None:
    """The ranker skips tools by an upper bound on what the terms it has not
    read yet can add (MaxScore); a negative weight would make that bound
    wrong, and the ranking silently differ from the full scoring."""
    with pytest.raises(ValueError, match=says):
        dataclasses.replace(WEIGHTS, **change)


@pytest.mark.parametrize("seed", range(3))
def test_the_best_are_those_a_full_sort_gives_ties_by_name(seed: int) -> None:
    """`rank` picks its best without sorting every scored tool: the answer
    is a full sort's (score, then name), also where many tools tie at the
    cut and for every limit."""
    r = common_word_catalog(150, seed)
    names = r.names()
    for word in WORDS[:8]:  # `among` a frozenset, as the search passes it
        query = f"task sync {word}"
        asked = list(dict.fromkeys([*terms(query), *written_initials(query)]))  # as `rank`
        weights = [r._weights_of(term) for term in asked]
        scores: dict[str, float] = {}
        for name in names:  # each tool scored as BM25F sums it: in the query's order
            summed, found = 0.0, 0
            for w in weights:
                if name in w:
                    summed += w[name]
                    found += 1
            scores[name] = summed * (found / len(asked)) ** WEIGHTS.coord
        scores = {n: s for n, s in scores.items() if any(n in w for w in weights)}
        assert r._scores(asked, weights, scores) == scores
        assert len(set(scores.values())) < len(scores) / 4  # ties, many
        everything = sorted(scores.items(), key=lambda item: (-item[1], item[0]))
        for limit in range(len(scores) + 2):
            assert r.rank(query, frozenset(names), limit) == everything[:limit], (query, limit)

"""Reciprocal rank fusion of tool search's two rankings (`registry.tool_fusion`),
and the semantic leg's fallback when its extra is missing."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from registry.semantic_leg import SemanticLeg
from registry.tool_embedder import Embedder, SemanticUnavailable
from registry.tool_fusion import fuse, shared_ranks


def test_a_tool_both_legs_rank_well_beats_one_only_one_ranks_first() -> None:
    lexical = ["a", "b", "c"]
    semantic = ["d", "b", "a"]
    fused = [name for name, _ in fuse(lexical, semantic, 4, k=5, semantic_weight=1.0)]
    # a: 1/6 + 1/8, b: 1/7 + 1/7, d: 1/6, c: 1/8
    assert fused == ["a", "b", "d", "c"]


def test_the_semantic_weight_lets_its_leg_lead_and_ties_go_by_name() -> None:
    fused = fuse(["x"], ["y"], 2, k=5, semantic_weight=2.0)
    assert [name for name, _ in fused] == ["y", "x"]
    assert fused[0][1] == pytest.approx(2 / 6)
    assert [n for n, _ in fuse(["x"], ["w"], 2, k=5, semantic_weight=1.0)] == ["w", "x"]


def test_a_tool_only_one_leg_found_is_still_an_answer_and_limit_holds() -> None:
    assert [n for n, _ in fuse([], ["p", "q"], 5)] == ["p", "q"]
    assert len(fuse(["a", "b", "c"], ["d", "e"], 2)) == 2


def test_tools_the_semantic_leg_cannot_tell_apart_are_told_apart_by_the_lexical() -> None:
    """Copies of one server (`s1__task`, `s2__task`, same text): a query that
    names `s2` ranks it first lexically; the semantic leg's order among equal
    similarities is chance and must not outweigh that."""
    semantic = ["s0__task", "s1__task", "s3__task", "s2__task"]  # one text: chance order
    similarity = [0.8] * 4
    lexical = [f"s2__{n}" for n in "abcdefg"] + ["s2__task"]  # all s2's: ties, rank 8
    fused = fuse(lexical, semantic, 2, semantic_scores=similarity)
    assert [name for name, _ in fused] == ["s2__task", "s0__task"]
    # Without the scores, the chance order wins (what happened before).
    assert [name for name, _ in fuse(lexical, semantic, 1)] == ["s0__task"]


def test_equal_scores_share_the_better_rank() -> None:
    assert shared_ranks([0.9, 0.9, 0.5, 0.5, 0.5, 0.1]) == [1, 1, 3, 3, 3, 6]
    assert shared_ranks([]) == []
    with pytest.raises(ValueError, match="one semantic score"):
        fuse(["a"], ["b", "c"], 1, semantic_scores=[0.5])


@pytest.mark.parametrize(("k", "weight"), [(0, 1.0), (-1, 1.0), (5, -0.5)])
def test_bad_parameters_are_refused(k: float, weight: float) -> None:
    with pytest.raises(ValueError, match="k must be > 0"):
        fuse(["a"], ["b"], 1, k=k, semantic_weight=weight)


def test_without_the_extra_the_leg_stays_off_and_search_is_lexical() -> None:
    def missing() -> Embedder:
        raise SemanticUnavailable("not installed")

    async def run() -> tuple[bool, list[str] | None]:
        leg = SemanticLeg(load=missing)
        leg.put("a", "text")
        return await leg.settled(), await leg.ranking("text", {"a"}, 5)

    assert asyncio.run(run()) == (False, None)


class _Picky:
    """An embedder that fails on one text (a model that cannot take it)."""

    dimensions = 2

    def embed(self, texts: list[str]) -> Any:
        import numpy as np

        if "bad" in texts:
            raise RuntimeError("cannot embed")
        return np.array([[1.0, 0.0] if t == "near" else [0.0, 1.0] for t in texts])


def test_a_tool_the_model_fails_on_is_lexical_only_and_holds_nobody_back() -> None:
    """Its chunk is logged and not tried again until its text changes; the
    other tools are still embedded, and callers who have it are not held
    to lexical search for good."""

    async def run() -> tuple[bool, list[str] | None, int]:
        leg = SemanticLeg(load=lambda: _Picky())  # type: ignore[arg-type, return-value]
        leg.put("broken", "bad")
        assert await leg.settled()  # ends: the failed tool is not pending
        leg.put("good", "near")
        settled = await leg.settled()
        ranked = await leg.ranking("near", {"broken", "good"}, 5)
        return settled, ranked, leg.pending

    assert asyncio.run(run()) == (True, ["good"], 0)


class _Axes:
    """An embedder whose vector for a text is the axis the text names."""

    dimensions = 3
    AXES = {"x": [1.0, 0.0, 0.0], "y": [0.0, 1.0, 0.0], "z": [0.0, 0.0, 1.0]}

    def embed(self, texts: list[str]) -> Any:
        import numpy as np

        return np.array([self.AXES[t] for t in texts], dtype=np.float32)


def test_a_callers_rows_kept_between_searches_follow_every_change() -> None:
    """The same set of names (a caller's listing) asked again, after a tool
    of it was re-embedded, removed or added, ranks by the vectors as they are
    now, and only the caller's own tools."""

    async def run() -> list[list[tuple[str, float]] | None]:
        leg = SemanticLeg(load=lambda: _Axes())  # type: ignore[arg-type, return-value]
        for name, text in {"a": "x", "b": "y", "other": "x"}.items():
            leg.put(name, text)
        assert await leg.settled()
        mine = frozenset({"a", "b"})
        seen = [await leg.scored("x", mine, 5)]
        seen.append(await leg.scored("x", mine, 5))  # kept rows
        leg.put("a", "z")  # a's text changed: pending, so lexical
        seen.append(await leg.scored("x", mine, 5))
        assert await leg.settled()
        seen.append(await leg.scored("x", mine, 5))  # b now nearest
        leg.remove("b")
        seen.append(await leg.scored("x", mine, 5))  # b gone from the leg
        return seen

    first, again, pending, moved, removed = asyncio.run(run())
    assert first == again == [("a", 1.0), ("b", 0.0)]
    assert pending is None
    assert moved == [("a", 0.0), ("b", 0.0)] or moved == [("b", 0.0), ("a", 0.0)]
    assert removed == [("a", 0.0)]

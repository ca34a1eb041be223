"""Tool search's queries embedded together (`registry.query_batches`), with
a stand-in embedder: what goes in which pass, and what each search gets."""

from __future__ import annotations

import asyncio
import random
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import pytest

from registry import query_batches
from registry.query_batches import QueryBatches

if TYPE_CHECKING:
    from registry.model_process import ModelProcess

AXES = {"x": [1.0, 0.0], "y": [0.0, 1.0], "xy": [0.6, 0.8]}
MATRIX = np.array([[1.0, 0.0], [0.0, 1.0], [0.6, 0.8]], dtype=np.float32)  # tools a, b, c


class _Gated:
    """Embeds by `AXES`; its first pass waits until the test opens the gate,
    so that the searches started meanwhile are waiting for the next one."""

    def __init__(self) -> None:
        self.passes: list[list[str]] = []
        self.began = threading.Event()
        self.gate = threading.Event()

    def embed(self, texts: list[str]) -> Any:
        self.passes.append(list(texts))
        if len(self.passes) == 1:
            self.began.set()
            assert self.gate.wait(10)
        if "bad" in texts:
            raise RuntimeError("cannot embed")
        return np.array([AXES[t] for t in texts], dtype=np.float32)


async def _searches(
    embedder: _Gated, queries: list[str], cancel: str = "", batches: QueryBatches | None = None
) -> list[Any]:
    """The first query's search, then, once its pass has begun, the others'."""
    batches = batches or QueryBatches()
    index = np.arange(3)

    def search(query: str) -> asyncio.Task[list[tuple[int, float]]]:
        return asyncio.create_task(batches.nearest(embedder, query, MATRIX, index, 2))

    tasks = [search(queries[0])]
    assert await asyncio.to_thread(embedder.began.wait, 10)
    tasks += [search(q) for q in queries[1:]]
    await asyncio.sleep(0)  # each has queued its query
    if cancel:
        tasks[queries.index(cancel)].cancel()
    embedder.gate.set()
    # Bounded: a search left waiting fails the test, not the run.
    return await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), 10)


def test_searches_that_arrive_during_a_pass_share_the_next() -> None:
    embedder = _Gated()
    answers = asyncio.run(_searches(embedder, ["x", "y", "xy", "x"]))
    assert embedder.passes == [["x"], ["y", "xy", "x"]]
    names = [[("abc"[i], round(s, 3)) for i, s in answer] for answer in answers]
    assert names == [
        [("a", 1.0), ("c", 0.6)],
        [("b", 1.0), ("c", 0.8)],
        [("c", 1.0), ("b", 0.8)],
        [("a", 1.0), ("c", 0.6)],
    ]


def test_a_query_the_model_cannot_take_fails_only_its_own_search() -> None:
    embedder = _Gated()
    answers = asyncio.run(_searches(embedder, ["x", "y", "bad", "xy"]))
    assert [type(a) for a in answers] == [list, list, RuntimeError, list]
    assert [i for i, _ in answers[3]] == [2, 1]
    # The batch's pass failed, then each of its queries went alone.
    assert embedder.passes == [["x"], ["y", "bad", "xy"], ["y"], ["bad"], ["xy"]]


def test_a_cancelled_search_is_not_embedded() -> None:
    embedder = _Gated()
    answers = asyncio.run(_searches(embedder, ["x", "y", "xy"], cancel="y"))
    assert isinstance(answers[1], asyncio.CancelledError)
    assert embedder.passes == [["x"], ["xy"]]
    assert [i for i, _ in answers[2]] == [2, 1]


def test_a_search_cancelled_during_its_pass_leaves_the_others_answered() -> None:
    """The first query's search is cancelled while the model runs it: its
    answer is dropped, the searches queued meanwhile are answered."""
    embedder = _Gated()
    answers = asyncio.run(_searches(embedder, ["x", "y", "xy"], cancel="x"))
    assert isinstance(answers[0], asyncio.CancelledError)
    assert embedder.passes == [["x"], ["y", "xy"]]
    assert [i for i, _ in answers[1]] == [1, 2]


class _Miscounting(_Gated):
    """Answers one row too few: a failure outside the model's own."""

    def embed(self, texts: list[str]) -> Any:
        return super().embed(texts)[:-1] if len(texts) > 1 else super().embed(texts)


def test_a_failure_outside_the_model_fails_its_batch_and_not_the_next() -> None:
    embedder = _Miscounting()

    async def run() -> tuple[list[Any], Any]:
        batches = QueryBatches()
        answers = await _searches(embedder, ["x", "y", "xy"], batches=batches)
        return answers, await batches.nearest(embedder, "y", MATRIX, np.arange(3), 1)

    answers, later = asyncio.run(run())
    assert isinstance(answers[0], list)
    assert [type(a) for a in answers[1:]] == [ValueError, ValueError]
    assert [i for i, _ in later] == [1]


def test_more_than_a_pass_takes_go_in_the_passes_after() -> None:
    embedder = _Gated()
    queries = ["x"] + ["y"] * (query_batches.MOST_AT_ONCE + 3)
    answers = asyncio.run(_searches(embedder, queries))
    assert [len(p) for p in embedder.passes] == [1, query_batches.MOST_AT_ONCE, 3]
    assert all(answer[0][0] == 1 for answer in answers[1:])


@pytest.mark.parametrize("seed", range(20))
def test_the_best_rows_are_a_stable_sorts_first(seed: int) -> None:
    """Many ties (few distinct values), ties across the cut included."""
    rng = random.Random(seed)
    similarity = np.array([rng.choice([0.1, 0.2, 0.5, 0.9]) for _ in range(200)])
    for depth in (0, 1, 5, 50, 199, 200, 300):
        expected = np.argsort(-similarity, kind="stable")[:depth]
        got = query_batches._best(similarity, depth)
        assert [i for i, _ in got] == list(expected)
        assert [s for _, s in got] == [float(similarity[i]) for i in expected]


def test_the_best_rows_with_nan_similarities_are_a_stable_sorts_first() -> None:
    similarity = np.array([np.nan, 0.5, np.nan, 0.2])
    for depth in (1, 2, 3, 4):
        expected = np.argsort(-similarity, kind="stable")[:depth]
        assert [i for i, _ in query_batches._best(similarity, depth)] == list(expected)


def test_two_callers_in_one_pass_each_get_only_their_own_tools() -> None:
    """Alice may call a, b and c; Bob only b and c. Their searches share a
    pass and a product: each answer is ranked within its own caller's rows."""
    embedder = _Gated()

    async def run() -> tuple[Any, Any, Any]:
        batches = QueryBatches()
        first = asyncio.create_task(batches.nearest(embedder, "y", MATRIX, np.arange(3), 3))
        assert await asyncio.to_thread(embedder.began.wait, 10)
        alice = asyncio.create_task(batches.nearest(embedder, "x", MATRIX, np.arange(3), 3))
        bob = asyncio.create_task(batches.nearest(embedder, "x", MATRIX, np.array([1, 2]), 3))
        await asyncio.sleep(0)
        embedder.gate.set()
        return await asyncio.wait_for(asyncio.gather(first, alice, bob), 10)

    _, alice, bob = asyncio.run(run())
    assert embedder.passes == [["y"], ["x", "x"]]
    assert [i for i, _ in alice] == [0, 2, 1]  # a, c, b
    assert [i for i, _ in bob] == [1, 0]  # positions in Bob's rows: c, then b
    assert [round(s, 3) for _, s in bob] == [0.6, 0.0]


def test_the_next_pass_does_not_wait_for_a_batchs_scoring(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A batch's similarities are worked out beside the next pass: the
    model is not left idle while they are."""
    scoring_held = threading.Event()
    release = threading.Event()
    nearest = query_batches._nearest

    def held_first(batch: Any, vectors: Any) -> Any:
        if not scoring_held.is_set():
            scoring_held.set()
            assert release.wait(10)
        return nearest(batch, vectors)

    monkeypatch.setattr(query_batches, "_nearest", held_first)
    embedder = _Gated()
    embedder.gate.set()

    async def run() -> tuple[Any, Any, int]:
        batches = QueryBatches()
        first = asyncio.create_task(batches.nearest(embedder, "x", MATRIX, np.arange(3), 1))
        assert await asyncio.to_thread(scoring_held.wait, 10)
        # The first batch's scoring is held; the second is embedded and answered.
        second = await asyncio.wait_for(batches.nearest(embedder, "y", MATRIX, np.arange(3), 1), 10)
        passes_before_release = len(embedder.passes)
        release.set()
        return await asyncio.wait_for(first, 10), second, passes_before_release

    first, second, passes = asyncio.run(run())
    assert passes == 2
    assert [i for i, _ in first] == [0]
    assert [i for i, _ in second] == [1]


class _Apart:
    """Stands in for the model's process (`registry.model_process`): each
    batch is taken at once, as its pipe takes it, and answered when the
    test opens that batch's gate."""

    def __init__(self) -> None:
        self.sent: list[list[str]] = []
        self.gates: list[asyncio.Event] = []

    async def embed(self, texts: list[str], *, query: bool = True) -> Any:
        self.sent.append(list(texts))
        gate = asyncio.Event()
        self.gates.append(gate)
        await gate.wait()
        return np.array([AXES[t] for t in texts], dtype=np.float32)


async def _settled(done: Callable[[], bool]) -> None:
    """Until ``done()``: the event loop turned until the tasks have acted."""
    for _ in range(1_000):
        if done():
            return
        await asyncio.sleep(0)
    raise AssertionError("not settled")


def test_the_next_batch_waits_in_the_models_process_once_as_large_as_the_pass() -> None:
    """With the model in its own process, the next batch is sent while a
    pass is under way, once as many queries wait as that pass carries: the
    process takes it the moment it is free. Never more than one waits
    there, and a smaller batch waits for the pass ahead to end."""
    apart = _Apart()

    async def run() -> list[Any]:
        batches = QueryBatches(cast("ModelProcess", apart))

        def search(query: str) -> asyncio.Task[list[tuple[int, float]]]:
            return asyncio.create_task(batches.nearest(None, query, MATRIX, np.arange(3), 1))

        tasks = [search("x")]
        await _settled(lambda: apart.sent == [["x"]])  # the model idle: at once
        tasks.append(search("y"))  # as large as the pass under way (1): sent
        await _settled(lambda: apart.sent == [["x"], ["y"]])
        tasks += [search("xy"), search("x")]  # two batches there already: they wait
        for _ in range(50):
            await asyncio.sleep(0)
        assert apart.sent == [["x"], ["y"]]
        apart.gates[0].set()  # one left under way ([y], 1): the two go
        await _settled(lambda: apart.sent == [["x"], ["y"], ["xy", "x"]])
        apart.gates[1].set()  # under way: [xy, x], 2
        await _settled(lambda: all(t.done() for t in tasks[:2]))
        tasks.append(search("y"))  # 1 < 2: it waits for the pass ahead
        for _ in range(50):
            await asyncio.sleep(0)
        assert len(apart.sent) == 3
        tasks.append(search("xy"))  # 2: sent
        await _settled(lambda: apart.sent[3:] == [["y", "xy"]])
        for gate in apart.gates[2:]:
            gate.set()
        return await asyncio.wait_for(asyncio.gather(*tasks), 10)

    answers = asyncio.run(run())
    assert [answer[0][0] for answer in answers] == [0, 1, 2, 0, 1, 2]  # a, b, c, a, b, c


@pytest.mark.parametrize("queries", [1, 2, 5, query_batches.BLOCKED_QUERIES, 12])
def test_a_batchs_similarities_by_blocks_are_the_whole_products(queries: int) -> None:
    # 1,000 tools: three whole blocks and a part one; 257: one and one row.
    # The queries' vectors as `_similarities` passes them (a transposed stack).
    rng = np.random.default_rng(7)
    for rows in (1_000, query_batches.ROWS_AT_ONCE + 1):
        matrix = rng.standard_normal((rows, 384)).astype(np.float32)
        vectors = np.stack(list(rng.standard_normal((queries, 384)).astype(np.float32))).T
        product = query_batches._product(matrix, vectors)
        assert product.shape == (rows, queries)
        assert np.allclose(product, matrix.astype(np.float64) @ vectors, rtol=0, atol=1e-3)

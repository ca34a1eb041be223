"""Tool search's model in a process of its own (`registry.model_process`),
with a stand-in model loaded there: answers come from that process, a query
before tools' texts; while it is not up `embed` says so (and search is
lexical); one that died is started again after its rest."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from registry import model_process, semantic_leg
from registry.model_process import EmbeddingFailed, ModelProcess, ModelProcessGone
from registry.query_batches import QueryBatches
from registry.semantic_leg import SemanticLeg
from registry.tool_embedder import SemanticUnavailable
from tests.support.waiting import wait_for, wait_for_async

AXES = {"x": [1.0, 0.0], "y": [0.0, 1.0]}
TOOLS = {"tool a": "x", "tool b": "y"}
MATRIX = np.array([[1.0, 0.0], [0.0, 1.0]], dtype=np.float32)  # tools a, b


GATE = "SWITCHBOARD_TEST_MODEL_GATE"  # a directory: "in-pass" made, "go" awaited


class _Axes:
    """Embeds by `AXES` ("tool a" as "x", "tool b" as "y"); "bad" fails the
    pass; "held" says it is in its pass and waits for the test's go."""

    def embed(self, texts: list[str]) -> Any:
        if GATE in os.environ:  # each pass's texts, a line each
            with (Path(os.environ[GATE]) / "passes").open("a") as passes:
                passes.write("|".join(texts) + "\n")
        if "bad" in texts:
            raise RuntimeError("cannot embed")
        if "wide" in texts:  # an answer of many writes
            return np.ones((len(texts), 100_000), dtype=np.float32)
        if "held" in texts:
            gate = Path(os.environ[GATE])
            (gate / "in-pass").touch()
            wait_for(lambda: (gate / "go").exists() or None, 30, what="the test's go")
            return np.zeros((len(texts), 2), dtype=np.float32)
        return np.array([AXES[TOOLS.get(t, t)] for t in texts], dtype=np.float32)


def load_axes() -> _Axes:
    """Run in the spawned process (found there by its module and name)."""
    return _Axes()


def load_nothing() -> _Axes:
    raise RuntimeError("no model here")


def load_missing() -> _Axes:
    raise SemanticUnavailable("the semantic leg needs pip install 'switchboard[semantic]'")


@pytest.fixture
def gate(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Set before the process starts: it inherits the environment."""
    monkeypatch.setenv(GATE, str(tmp_path))
    return tmp_path


async def _in_pass(gate: Path) -> None:
    await wait_for_async(lambda: (gate / "in-pass").exists() or None, what="the held pass")


@pytest.fixture
def apart() -> Iterator[ModelProcess]:
    process = ModelProcess(load_axes)
    yield process
    process.close()


def test_texts_are_embedded_in_another_process(apart: ModelProcess) -> None:
    async def run() -> tuple[BaseException | None, bool, Any]:
        try:
            await apart.embed(["x"])  # starts it: not up yet
            first = None
        except ModelProcessGone as error:
            first = error
        up = await apart.started()
        return first, up, await apart.embed(["y", "x"])

    first, up, vectors = asyncio.run(run())
    assert isinstance(first, ModelProcessGone) and up
    assert apart.pid is not None and apart.pid != os.getpid()
    assert vectors.tolist() == [AXES["y"], AXES["x"]]


def test_a_long_answer_is_read_whole_on_the_gateways_loop(apart: ModelProcess) -> None:
    """uvloop makes a descriptor it watches non-blocking: an answer of
    several writes is still read whole, not cut where the pipe ran dry."""
    uvloop = pytest.importorskip("uvloop")

    async def run() -> list[Any]:
        assert await apart.started()
        return [await apart.embed(["wide"] * 4) for _ in range(5)]

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        answers = runner.run(run())
    assert all(a.shape == (4, 100_000) and a.sum() == 400_000 for a in answers)


def test_a_pass_the_model_fails_fails_alone(apart: ModelProcess) -> None:
    async def run() -> Any:
        assert await apart.started()
        with pytest.raises(EmbeddingFailed, match="cannot embed"):
            await apart.embed(["x", "bad"])
        return await apart.embed(["x"])

    assert asyncio.run(run()).tolist() == [AXES["x"]]


def test_a_query_goes_before_tools_texts_waiting_with_it(gate: Path, apart: ModelProcess) -> None:
    async def run() -> list[str]:
        assert await apart.started()
        ended: list[str] = []

        async def embed(texts: list[str], query: bool) -> None:
            await apart.embed(texts, query=query)
            ended.append(texts[0])

        held = asyncio.create_task(embed(["held"], False))
        await _in_pass(gate)
        waiting = [asyncio.create_task(embed(["tool a"], False))]
        await asyncio.sleep(0)  # sent: the tools' text first
        waiting.append(asyncio.create_task(embed(["y"], True)))
        await asyncio.sleep(0)
        (gate / "go").touch()
        await asyncio.gather(held, *waiting)
        return ended

    assert asyncio.run(run()) == ["held", "y", "tool a"]


def test_the_answer_of_a_cancelled_embed_is_no_one_elses(gate: Path, apart: ModelProcess) -> None:
    async def run() -> Any:
        assert await apart.started()
        held = asyncio.create_task(apart.embed(["held"]))
        await _in_pass(gate)
        held.cancel()
        (gate / "go").touch()  # its answer comes: zeros, which no one takes
        return await apart.embed(["y"])

    assert asyncio.run(run()).tolist() == [AXES["y"]]


def test_a_process_that_died_mid_pass_rests_then_is_started_again(
    gate: Path, apart: ModelProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def run() -> tuple[bool, bool, Any]:
        assert await apart.started()
        pid = apart.pid
        assert pid is not None
        waiting = asyncio.create_task(apart.embed(["held"]))
        await _in_pass(gate)
        os.kill(pid, signal.SIGKILL)
        with pytest.raises(ModelProcessGone):
            await waiting  # its end of the pipe was read: it died
        resting = await apart.started()
        monkeypatch.setattr(model_process, "RESTART_SECONDS", 0.0)
        again = await apart.started()
        return resting, again, await apart.embed(["x"])

    resting, again, vectors = asyncio.run(run())
    assert not resting and again
    assert vectors.tolist() == [AXES["x"]]


def test_a_process_that_does_not_answer_is_taken_for_stuck(
    gate: Path, apart: ModelProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def run() -> bool:
        assert await apart.started()
        monkeypatch.setattr(model_process, "ANSWER_SECONDS", 0.5)  # once up: not its start's
        with pytest.raises(ModelProcessGone, match="stuck"):
            await apart.embed(["held"])  # never let go
        return apart.up

    assert not asyncio.run(run())
    assert apart.pid is None


def test_a_model_that_does_not_load_there_is_not_up() -> None:
    apart = ModelProcess(load_nothing)
    try:
        assert not asyncio.run(apart.started())
        assert apart.unavailable is None  # tried again after its rest
    finally:
        apart.close()


def test_without_the_extra_it_is_unavailable_for_good() -> None:
    apart = ModelProcess(load_missing)
    leg = SemanticLeg(apart=apart)

    async def run() -> bool:
        leg.put("a", "tool a")
        return await leg.settled()

    try:
        assert not asyncio.run(run())
        assert leg.unavailable and apart.unavailable is not None
    finally:
        leg.close()


def test_closed_it_ends_the_process(apart: ModelProcess) -> None:
    assert asyncio.run(apart.started())
    pid = apart.pid
    assert pid is not None
    apart.close()

    def ended() -> bool | None:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True  # ended and reaped
        return None

    wait_for(ended, 10, what="the process ended")
    assert not asyncio.run(apart.started())  # and not started again


def test_a_tool_removed_or_changed_during_catch_up_is_not_embedded_as_it_was(
    gate: Path, apart: ModelProcess
) -> None:
    """The catch-up lists what is to embed once a round: a chunk still
    leaves out a tool removed, or changed, while an earlier chunk was in
    its pass; the changed one is embedded as it is now."""
    leg = SemanticLeg(apart=apart)
    first = ["held", *["x"] * (semantic_leg.EMBEDDED_AT_ONCE_APART - 1)]

    async def run() -> Any:
        for k, text in enumerate(first):
            leg.put(f"t{k}", text)
        leg.put("removed", "y")
        leg.put("changed", "tool a")
        leg.start()
        await _in_pass(gate)
        leg.remove("removed")
        leg.put("changed", "tool b")
        (gate / "go").touch()
        assert await leg.settled()
        return await leg.ranking("y", frozenset({"changed", "t1"}), 2)

    try:
        ranked = asyncio.run(run())
    finally:
        leg.close()
    passes = (gate / "passes").read_text().splitlines()
    assert passes == ["|".join(first), "tool b", "y"]  # the last: the search's query
    assert ranked == ["changed", "t1"]  # "tool b" is "y"


def test_the_leg_embeds_tools_and_queries_there(apart: ModelProcess) -> None:
    leg = SemanticLeg(apart=apart)

    async def run() -> Any:
        leg.put("a", "tool a")
        leg.put("b", "tool b")
        assert await leg.settled()
        return await leg.ranking("y", frozenset({"a", "b"}), 2)

    assert asyncio.run(run()) == ["b", "a"]


def test_searches_are_lexical_while_it_is_not_up(apart: ModelProcess) -> None:
    async def run() -> BaseException | None:
        try:
            await QueryBatches(apart).nearest(None, "x", MATRIX, np.arange(2), 1)
        except ModelProcessGone as error:
            return error
        return None

    assert isinstance(asyncio.run(run()), ModelProcessGone)

    leg = SemanticLeg(apart=ModelProcess(load_axes))

    async def lexical() -> Any:
        leg.put("a", "tool a")
        return await leg.ranking("x", frozenset({"a"}), 1)

    try:
        assert asyncio.run(lexical()) is None  # starting: lexical meanwhile
    finally:
        leg.close()

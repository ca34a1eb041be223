"""The fan-out's own decisions (`gateway.flows.fanout`), without an engine:
a join with branches waiting for someone, and what a replay of a fan-out's
start may not undo."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

from gateway.flows.definition import ParallelStep
from gateway.flows.fanout import FanOutSteps
from gateway.flows.fanout_parallel import join_verdict
from gateway.flows.outcomes import ASKING, HELD, failed


def _parallel(join: Any) -> ParallelStep:
    branches = [{"id": b, "call": {"agent": "sales"}} for b in ("a", "b", "c")]
    return ParallelStep.model_validate(
        {"id": "p", "parallel": {"join": join, "branches": branches}}
    )


DONE: dict[str, Any] = {"state": "completed", "output": 1}


def test_a_branch_waiting_for_someone_may_still_complete() -> None:
    asking: dict[str, Any] = {"state": ASKING, "output": {"question": "which?"}}
    outcomes: dict[str, dict[str, Any]] = {"a": DONE, "b": asking, "c": DONE}
    # Undecided while it waits its turn; without hope, not met.
    assert join_verdict(_parallel("all"), outcomes) is None
    assert join_verdict(_parallel("all"), outcomes, hopeful=False) == "lost"
    # A join met without it: it is not needed (the run does not ask).
    assert join_verdict(_parallel("any"), outcomes) == "met"
    assert join_verdict(_parallel({"quorum": 2}), outcomes) == "met"
    held: dict[str, dict[str, Any]] = {"a": failed("no"), "b": {"state": HELD}, "c": failed("no")}
    assert join_verdict(_parallel("any"), held) is None
    assert join_verdict(_parallel({"quorum": 2}), held) == "lost"


class _Store:
    def __init__(self, rows: dict[str, dict[str, Any]]) -> None:
        self.rows = rows
        self.runs: list[dict[str, Any]] = []

    async def step_row(self, run_id: str, step_id: str) -> dict[str, Any] | None:
        return self.rows.get(step_id)

    async def set_run(self, run_id: str, **values: Any) -> bool:
        self.runs.append(values)
        return True


class _Run(FanOutSteps):
    def __init__(self, store: _Store) -> None:
        self.rt = SimpleNamespace(store=store)  # type: ignore[assignment]
        self.run_id = "run_1"
        self.marks: list[tuple[str, str, str]] = []

    async def mark(self, step_id: str, kind: str, state: str, **values: Any) -> None:
        self.marks.append((step_id, kind, state))


def test_entering_a_fan_out_again_leaves_the_runs_current_step() -> None:
    first = _Store({})
    asyncio.run(_Run(first).enter("p", "parallel"))
    assert first.runs == [{"current_step": "p"}]
    # A replay after a crash passes through again while a branch's question
    # is the run's current step: that stays.
    replayed = _Store({"p": {"state": "running"}})
    run = _Run(replayed)
    asyncio.run(run.enter("p", "parallel"))
    assert replayed.runs == []
    assert run.marks == [("p", "parallel", "running")]

"""The steps that fan out: `map` (one call per item, bounded concurrency) and
`parallel` (branches joined by all / any / a quorum), as a part of
`gateway.flows.runner.FlowRun`. Each call they make is a DBOS step of its
own, with its step id drawn in order before any starts, so a run resumed
after a crash finds every finished call's record under the same id.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from dbos import DBOS

from gateway.flows.calls import CallContext, StepCall, failed
from gateway.flows.checks import as_item_call
from gateway.flows.definition import MAX_MAP_ITEMS, CallStep, MapStep, ParallelStep, Quorum
from gateway.flows.expressions import evaluate
from gateway.flows.outcomes import now, seen, truthy
from gateway.flows.runtime import FlowRuntime


class FanOutSteps:
    rt: FlowRuntime
    run_id: str
    info: dict[str, Any]
    ctx: dict[str, Any]

    async def _call(
        self, step: CallStep, parent: str | None, scope: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        raise NotImplementedError

    async def _mark(self, step_id: str, kind: str, state: str, **values: Any) -> None:
        raise NotImplementedError

    # Map -----------------------------------------------------------------------------

    async def _map(self, step: MapStep) -> dict[str, Any]:
        """One call per item of ``map.over``, at most ``concurrency`` at once,
        each a DBOS step of its own recorded as ``<step>[<index>]``: a run
        resumed after a crash finds the items already done and calls only the
        others (an item in flight re-attaches, as any call does)."""
        refused: str | None = None
        try:
            items = evaluate(step.map.over, self.ctx)
        except Exception as exc:
            refused = f"map.over: {exc}"
        else:
            if not isinstance(items, list):
                refused = f"map.over must be a list; it is {type(items).__name__}"
            elif len(items) > MAX_MAP_ITEMS:
                refused = f"map.over has {len(items)} items; at most {MAX_MAP_ITEMS}"
        if refused is not None:
            await self._mark(step.id, "map", "failed", started_at=now(), error=refused)
            return failed(refused)
        await self._mark(step.id, "map", "running", started_at=now())
        await self.rt.store.set_run(self.run_id, current_step=step.id)
        # Step ids drawn in the items' order now, whatever order they finish in.
        reservations = [DBOS.reserve_step() for _ in items]
        gate = asyncio.Semaphore(step.map.concurrency)
        outcomes: list[dict[str, Any]] = [{} for _ in items]

        async def one(index: int, item: Any) -> None:
            async with gate:
                call = as_item_call(step, f"{step.id}[{index}]")
                outcomes[index] = await reservations[index].run_async(
                    {"name": f"call {call.id}", "preemptible": True},
                    self._call,
                    call,
                    step.id,
                    {"item": item, "index": index},
                )

        await asyncio.gather(*(one(i, item) for i, item in enumerate(items)))
        failures = [(i, o) for i, o in enumerate(outcomes) if o.get("state") != "completed"]
        outcome: dict[str, Any]
        if failures:
            said = "; ".join(f"[{i}]: {o.get('error')}" for i, o in failures[:5])
            more = f" (and {len(failures) - 5} more)" if len(failures) > 5 else ""
            outcome = failed(f"{len(failures)} of {len(items)} items failed: {said}{more}")
        else:
            output = [o["output"] for o in outcomes]
            outcome = {"state": "completed", "output": output, "text": "", "error": None}
        await self._mark(
            step.id, "map", str(outcome["state"]), output=outcome["output"], error=outcome["error"]
        )
        return outcome

    # Parallel ------------------------------------------------------------------------

    async def _parallel(self, step: ParallelStep) -> dict[str, Any]:
        branches = step.parallel.branches
        join = step.parallel.join
        needed = (
            len(branches)
            if join == "all"
            else 1
            if join == "any"
            else int(getattr(join, "quorum", 1))
        )
        await self._mark(step.id, "parallel", "running", started_at=now())
        await self.rt.store.set_run(self.run_id, current_step=step.id)
        # Step ids for every branch, drawn in order now: the branches then run
        # at once, and a replay finds each one's record under the same id.
        reservations = [DBOS.reserve_step() for _ in branches]
        decided = asyncio.Event()
        outcomes: dict[str, dict[str, Any]] = {}

        def settle() -> None:
            done = sum(1 for o in outcomes.values() if o["state"] == "completed")
            given_up = sum(
                1
                for b in branches
                if b.id in outcomes
                and outcomes[b.id]["state"] == "failed"
                and (
                    (join == "all" and b.on_error == "fail")
                    or isinstance(join, Quorum)
                    or join == "any"
                )
            )
            skipped = sum(1 for o in outcomes.values() if o["state"] == "skipped")
            if join == "all":
                if given_up or done + skipped == len(branches):
                    decided.set()
            elif done >= needed or len(branches) - given_up - skipped < needed:
                decided.set()

        async def one(index: int, branch: CallStep) -> None:
            outcome = await reservations[index].run_async(
                {"name": f"call {branch.id}", "preemptible": True},
                self._branch,
                branch,
                step.id,
                decided,
            )
            outcomes[branch.id] = outcome
            self.ctx["steps"][branch.id] = seen(outcome)
            settle()

        await asyncio.gather(*(one(i, b) for i, b in enumerate(branches)))
        done = {
            b.id: outcomes[b.id]["output"]
            for b in branches
            if outcomes[b.id]["state"] == "completed"
        }
        skipped = [b.id for b in branches if outcomes[b.id]["state"] == "skipped"]
        met = len(done) + len(skipped) == len(branches) if join == "all" else len(done) >= needed
        outcome: dict[str, Any]
        if met:
            outcome = {"state": "completed", "output": done, "text": "", "error": None}
        else:
            errors = "; ".join(
                f"{b.id}: {outcomes[b.id]['error']}" for b in branches if outcomes[b.id]["error"]
            )
            outcome = failed(f"join {_join_name(join)} not met ({errors or 'no branch completed'})")
        await self._mark(
            step.id,
            "parallel",
            str(outcome["state"]),
            output=outcome["output"],
            error=outcome["error"],
        )
        return outcome

    async def _branch(
        self, branch: CallStep, parent: str, decided: asyncio.Event
    ) -> dict[str, Any]:
        """One branch (a DBOS step): its call, unless the join is decided first."""
        if branch.when is not None and not truthy(evaluate(branch.when, self.ctx)):
            await self._mark(
                branch.id, "call", "skipped", parent=parent, error="its when did not hold"
            )
            return {"state": "skipped", "output": None, "text": "", "error": None}
        if decided.is_set():
            return await self._not_needed(branch, parent)
        call = asyncio.ensure_future(self._call(branch, parent))
        waiter = asyncio.ensure_future(decided.wait())
        try:
            await asyncio.wait({call, waiter}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            waiter.cancel()
        if call.done():
            return call.result()
        call.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await call
        with contextlib.suppress(Exception):
            caller = await self.rt.caller(self.info["grant_id"])
            await StepCall(
                self.rt, CallContext(self.run_id, self.info["trace_id"], caller), branch
            )._cancel_upstream()
        return await self._not_needed(branch, parent)

    async def _not_needed(self, branch: CallStep, parent: str) -> dict[str, Any]:
        await self._mark(
            branch.id, "call", "not_needed", parent=parent, error="the join was decided"
        )
        return {"state": "not_needed", "output": None, "text": "", "error": None}


def _join_name(join: Any) -> str:
    return f"quorum {join.quorum}" if isinstance(join, Quorum) else str(join)

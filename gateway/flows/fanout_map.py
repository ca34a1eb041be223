"""The `map` step: one call per item of a list -- or one sequence of steps
per item (``map.steps``, `gateway.flows.lanes`) -- at most ``concurrency``
at once (`gateway.flows.fanout` says what every fan-out shares)."""

from __future__ import annotations

import asyncio
from typing import Any

from dbos import DBOS

from gateway.flows import lanes, reviews
from gateway.flows.definition import MAX_MAP_ITEMS, CallStep, MapStep
from gateway.flows.expressions import evaluate
from gateway.flows.fanout import ENDS_RUN, FanOutSteps, stops
from gateway.flows.outcomes import WAITING, failed
from gateway.flows.preemption import cancellable
from gateway.flows.target_checks import as_item_call


class MapSteps(FanOutSteps):
    async def _map(self, step: MapStep) -> dict[str, Any]:
        """One call per item of ``map.over``, at most ``concurrency`` at once,
        each a DBOS step of its own recorded as ``<step>[<index>]``: a run
        resumed after a crash finds the items already done and calls only the
        others (an item in flight re-attaches, as any call does).

        ``on_error: checkpoint`` asks once for the step, not once per failed
        item: the workflow opens the review when every item has settled, so
        the ids DBOS gives its operations never depend on which item failed
        first (a run resumed while it waits finds the same approval), and one
        decision covers every failure rather than up to a thousand approvals.
        Approved, only the items that did not complete are called again.
        (An item the policy holds is another matter: each such call is its
        own approval, asked in turn once the items have settled.)"""
        await self.enter(step.id, "map")
        items: list[dict[str, Any]] = []  # each item's outcome in the last round
        walked: dict[int, lanes.LaneRun] = {}  # each item's sequence, kept for a run again
        outcome = await self._map_round(step, items, walked)
        if step.on_error != "checkpoint":
            return outcome

        async def again() -> dict[str, Any]:
            return await self._map_round(step, items, walked, again=True)

        saying = "call the items that failed again"
        target = step.map.call.target if step.map.call is not None else "map"
        return await reviews.reviewed(self, step.id, target, outcome, again, saying)

    async def _map_round(
        self,
        step: MapStep,
        items: list[dict[str, Any]],
        walked: dict[int, lanes.LaneRun],
        again: bool = False,
    ) -> dict[str, Any]:
        """The items not completed yet (all, the first time), ``items`` updated."""
        refused: str | None = None
        try:
            values = evaluate(step.map.over, self.ctx)
        except Exception as exc:
            refused = f"map.over: {exc}"
        else:
            if not isinstance(values, list):
                refused = f"map.over must be a list; it is {type(values).__name__}"
            elif len(values) > MAX_MAP_ITEMS:
                refused = f"map.over has {len(values)} items; at most {MAX_MAP_ITEMS}"
        if refused is not None:
            await self.mark(step.id, "map", "failed", error=refused)
            return failed(refused)
        if len(items) != len(values):
            items[:] = [{} for _ in values]
            walked.clear()
        todo = [i for i, o in enumerate(items) if o.get("state") != "completed"]
        if step.map.steps is not None:
            return await self._map_lanes(step, values, items, todo, walked, again)
        calls = {i: as_item_call(step, f"{step.id}[{i}]") for i in todo}
        if again:
            redo = [calls[i] for i in todo if items[i]]
            await DBOS.run_step_async(
                {"name": f"reset {step.id} items"}, reviews.reset, self, redo, step.id
            )
        # Step ids drawn in the items' order now, whatever order they finish in.
        reservations = {i: DBOS.reserve_step() for i in todo}
        gate = asyncio.Semaphore(step.map.concurrency)

        async def one(index: int) -> None:
            async with gate:
                items[index] = await reservations[index].run_async(
                    {"name": f"call {calls[index].id}"},
                    cancellable(self._retrying),
                    calls[index],
                    step.id,
                    {"item": values[index], "index": index},
                )

        await asyncio.gather(*(one(i) for i in todo))
        stopped: dict[str, Any] | None = None
        for index in todo:  # in the items' order, one after the other
            if items[index].get("state") not in WAITING:
                continue
            if stopped is not None:  # the map ends anyway: nobody is asked for it
                items[index] = await self.dismissed(calls[index], step.id, stopped)
                continue
            scope = {"item": values[index], "index": index}
            items[index] = await self.go_on_waiting_call(calls[index], step.id, items[index], scope)
            if stops(items[index]):
                stopped = items[index]
        return await self._map_settled(step, items, stopped)

    async def _map_lanes(
        self,
        step: MapStep,
        values: list[Any],
        items: list[dict[str, Any]],
        todo: list[int],
        walked: dict[int, lanes.LaneRun],
        again: bool,
    ) -> dict[str, Any]:
        """A map whose items run steps of their own (``map.steps``): each
        item a sequence (`gateway.flows.lanes`), at most ``concurrency`` at
        once; those paused by a call that waits are gone on with in turn."""
        assert step.map.steps is not None
        runs = {i: walked.get(i) or self._item_lane(step, values, i) for i in todo}
        walked.update(runs)
        if again:
            calls: list[CallStep] = []
            others: list[str] = []
            for i in todo:  # each item that ran, from the step that ended it short
                if items[i]:
                    item_calls, item_others = lanes.to_reset(runs[i], runs[i].again())
                    calls += item_calls
                    others += item_others
            await DBOS.run_step_async(
                {"name": f"reset {step.id} items"}, self.reset_again, calls, others, step.id
            )
        for i in todo:  # ids drawn in the items' order, whatever order they finish in
            runs[i].reserve()
        gate = asyncio.Semaphore(step.map.concurrency)

        async def one(index: int) -> None:
            async with gate:
                ended = await runs[index].walk(self, None, settled=False)
            items[index] = ended if ended is not None else dict(runs[index].waiting or {})

        await asyncio.gather(*(one(i) for i in todo))
        stopped: dict[str, Any] | None = None
        for index in todo:  # in the items' order, one after the other
            lane = runs[index]
            if lane.waiting is None:
                continue
            if stopped is not None:
                items[index] = await lane.dismiss(self, stopped)
                continue
            ended = await lane.walk(self, None, settled=True)
            assert ended is not None  # settled: nothing pauses now
            items[index] = ended
            if stops(items[index]):
                stopped = items[index]
        return await self._map_settled(step, items, stopped)

    def _item_lane(self, step: MapStep, values: list[Any], index: int) -> lanes.LaneRun:
        assert step.map.steps is not None
        record = f"{step.id}[{index}]"
        return lanes.LaneRun(
            steps=step.map.steps,
            record=record,
            parent=step.id,
            name=lambda inner: f"{record}.{inner}",
            output=step.map.output,
            scope={"item": values[index], "index": index},
        )

    async def _map_settled(
        self, step: MapStep, items: list[dict[str, Any]], stopped: dict[str, Any] | None
    ) -> dict[str, Any]:
        """The map's outcome once every item has settled, recorded."""
        if stopped is not None and stopped["state"] in ENDS_RUN:
            # A human said no: the run ends so, as for a call step.
            await self.mark(step.id, "map", "failed", error=stopped["error"])
            return stopped
        failures = [(i, o) for i, o in enumerate(items) if o.get("state") != "completed"]
        outcome: dict[str, Any]
        if failures:
            said = "; ".join(f"[{i}]: {o.get('error')}" for i, o in failures[:5])
            more = f" (and {len(failures) - 5} more)" if len(failures) > 5 else ""
            outcome = failed(f"{len(failures)} of {len(items)} items failed: {said}{more}")
            if any(o.get("fatal") for _, o in failures):
                outcome["fatal"] = True  # the run's grant is unusable: no review helps
        else:
            output = [o["output"] for o in items]
            outcome = {"state": "completed", "output": output, "text": "", "error": None}
        await self.mark(
            step.id, "map", str(outcome["state"]), output=outcome["output"], error=outcome["error"]
        )
        return outcome

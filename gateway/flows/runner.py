"""A run: one DBOS workflow (workflow id = run id) that walks the flow's steps.

DBOS records each step's result in its own tables in the gateway's database;
after a crash, `DBOS.launch` runs the workflow again and every recorded step
returns its recorded result without running: a completed step is never run
twice. Everything the walk decides on (a ``when``, a route, a join, a
checkpoint's wait) is computed from recorded results only -- the clock
included (`checkpoints`) -- so the replay takes the same path.

A step that was in flight runs again; `gateway.flows.calls` makes sure that
re-attaches to the agent's task, or refuses to send twice. The kinds of
step are parts of `FlowRun` of their own: a call (`call_steps`), a map
(`fanout_map`), a parallel step (`fanout_parallel`); the others are
functions of their modules, handed the run.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from dbos import DBOS

from gateway.delegation.audit_records import AuditEvent
from gateway.flows import back_routes, checkpoints, loops, reviews, run_ends, waits
from gateway.flows.call_steps import CallSteps
from gateway.flows.definition import (
    END,
    CallStep,
    CheckpointStep,
    FlowDocument,
    MapStep,
    ParallelStep,
    RepeatStep,
    RouteStep,
    WaitStep,
)
from gateway.flows.expressions import evaluate
from gateway.flows.fanout_map import MapSteps
from gateway.flows.fanout_parallel import ParallelSteps
from gateway.flows.home_loop import at_home
from gateway.flows.outcomes import ASKING, HELD, ending, now, seen, truthy
from gateway.flows.placement import AnyStep
from gateway.flows.runtime import FlowRuntime

logger = logging.getLogger(__name__)


def _context(info: dict[str, Any]) -> dict[str, Any]:
    """What a run's expressions read, before any step."""
    return {
        "input": info["input"],
        "steps": {},
        "run": {"id": info["id"], "flow": info["flow_id"], "user": info["owner_subject"]},
    }


WORKFLOW = "switchboard.flows.run"
_RUNTIME: FlowRuntime | None = None
_RUNNING: set[asyncio.Task[Any]] = set()


def install(runtime: FlowRuntime | None) -> None:
    """The runtime every run in this process works with (DBOS is one per process)."""
    global _RUNTIME
    _RUNTIME = runtime


def runtime() -> FlowRuntime:
    if _RUNTIME is None:
        raise RuntimeError("the flow engine is not running")
    return _RUNTIME


def running() -> set[asyncio.Task[Any]]:
    """The asyncio tasks of the runs in progress here (stopped at shutdown)."""
    return _RUNNING


@DBOS.workflow(name=WORKFLOW)
@at_home
async def run_flow(run_id: str) -> str:
    task = asyncio.current_task()
    if task is not None:
        _RUNNING.add(task)
        task.add_done_callback(_RUNNING.discard)
    # The workflow's id is its run's: a fork (`gateway.flows.forks`) keeps its
    # origin's argument, as DBOS forks do, under an id of its own.
    run = FlowRun(runtime(), DBOS.workflow_id or run_id)
    try:
        return await run.execute()
    except Exception as exc:  # never left "working" with its workflow ended (`run_ends`)
        if run.info:
            await run_ends.failed_for_good(run.rt.store, run.run_id, run._finish, exc)
        raise


class FlowRun(CallSteps, MapSteps, ParallelSteps):
    def __init__(self, rt: FlowRuntime, run_id: str) -> None:
        self.rt = rt
        self.run_id = run_id
        self.info: dict[str, Any] = {}
        self.ctx: dict[str, Any] = {}

    async def execute(self) -> str:
        begun = await DBOS.run_step_async(run_ends.own_step("begin"), self._begin)
        if begun is None:
            return "missing"
        self.info = begun["run"]
        document = await self._document(begun)
        self.ctx = _context(self.info)
        ended: tuple[str, str] | None = None
        start = 0
        # One count of rounds for the whole walk: a fork goes on counting the
        # rounds its replay of the origin walked (`back_routes`).
        rounds = back_routes.Rounds()
        if self.info["id"] != self.run_id:
            # A fork: "begin" is its origin's, copied by DBOS with the
            # operations of the steps before the fork's. Those steps are
            # walked as the origin walked them (its flow version, input and
            # run: the same operations asked for, each answered from the
            # copy), then the fork goes on with its own (`gateway.flows.forks`).
            own = await self._read()
            if own is None:
                return "missing"
            self.info = own["run"]
            fork_step = str(own["fork_step"])
            ended = await self._walk(document, rounds, until=fork_step)
            document = await self._document(own)
            self.ctx.update(input=self.info["input"], run=_context(self.info)["run"])
            start = [step.id for step in document.steps].index(fork_step)
        if ended is None:
            ended = await self._walk(document, rounds, start)
        if ended is not None:
            state, reason = ended
            await self._end(state, reason)
            return state
        try:
            output = (
                evaluate(document.output, self.ctx)
                if document.output is not None
                else self._last_output(document)
            )
        except Exception as exc:  # a JMESPath runtime error (a function on the wrong type)
            await self._end("failed", f"output: {exc}")
            return "failed"
        await self._end("completed", "done", output)
        return "completed"

    async def _end(self, state: str, reason: str, output: Any = None) -> None:
        await DBOS.run_step_async(run_ends.own_step("finish"), self._finish, state, reason, output)

    def _last_output(self, document: FlowDocument) -> Any:
        for step in reversed(document.steps):
            seen = self.ctx["steps"].get(step.id)
            if seen is not None and seen["state"] == "completed":
                return seen["output"]
        return None

    async def _walk(
        self,
        document: FlowDocument,
        rounds: back_routes.Rounds,
        start: int = 0,
        until: str | None = None,
    ) -> tuple[str, str] | None:
        """Run the steps from ``start``; (state, reason) when the run ends
        early. ``until``: stop before that step (a fork's replay of its
        origin), which the walk must reach. ``rounds``: each step reached
        again by a route that goes back is recorded as "<id>#<round>"
        (`back_routes`); the walk is the same on a replay."""
        order = {step.id: i for i, step in enumerate(document.steps)}
        index = start
        while index < len(document.steps):
            step = document.steps[index]
            if step.id == until:
                return None
            index += 1
            named = rounds.reach(step)
            try:
                holds = step.when is None or truthy(evaluate(step.when, self.ctx))
            except Exception as exc:
                return "failed", f"step {named.id}: when: {exc}"
            if not holds:
                await self._skip(named.id, "its when did not hold", step)
                continue
            if isinstance(step, RouteStep):
                goto = self._route(step)
                # Back: to a step before the route (never the route itself).
                back = goto != END and order.get(goto, index) < index - 1
                shown: dict[str, Any] = {"goto": goto}
                if back or step.max is not None:
                    shown["round"] = rounds.round_of(step.id)
                if back and not rounds.may_go_back(step):
                    said = f"route {step.id} would go back to {goto} after {step.max} round(s)"
                    if step.on_max == "fail":
                        await self.mark(named.id, "route", "failed", output=shown, error=said)
                        return "failed", said
                    goto, back, shown["goto"] = "", False, None
                await self.mark(named.id, "route", "completed", output=shown)
                self.ctx["steps"][step.id] = seen({"state": "completed", "output": shown})
                target = len(document.steps) if goto == END else order.get(goto, index)
                for skipped in document.steps[index:target]:
                    passed = rounds.reach(skipped)
                    await self._skip(passed.id, f"route {named.id} went to {goto}", skipped)
                index = target if back else max(index, target)
                continue
            assert not isinstance(named, RouteStep)  # as ``step`` is not
            outcome = await self.step(named)
            loops.remember(self, step, named, outcome)
            ended = ending(step, outcome)
            if ended is not None:
                return ended
        if until is not None:
            return "failed", f"the fork's step {until} was not reached as in the run forked"
        return None

    async def step(
        self, step: CallStep | ParallelStep | MapStep | WaitStep | CheckpointStep | RepeatStep
    ) -> dict[str, Any]:
        """One step that does work (a route is the walk's own), its outcome."""
        if isinstance(step, CallStep):
            return await reviews.call_with_review(self, step)
        if isinstance(step, ParallelStep):
            return await self._parallel(step)
        if isinstance(step, MapStep):
            return await self._map(step)
        if isinstance(step, WaitStep):
            return await waits.wait(self, step)
        if isinstance(step, RepeatStep):
            return await loops.repeat(self, step)
        return await checkpoints.wait(self, step)

    def _route(self, step: RouteStep) -> str:
        for case in step.route:
            if case.when is None or truthy(evaluate(case.when, self.ctx)):
                return case.goto
        return ""  # no case held: on to the next step

    # Steps ---------------------------------------------------------------------------

    async def _begin(self) -> dict[str, Any] | None:
        begun = await self._read()
        if begun is not None:
            info = begun["run"]
            await self.rt.publish(info, "working", f"flow {info['flow_id']} is running")
        return begun

    async def _read(self) -> dict[str, Any] | None:
        """The run's record and flow document: what never changes of a run."""
        try:
            run = await self.rt.store.run_row(self.run_id)
        except Exception:
            logger.warning("flow run %s has no record; not run", self.run_id)
            return None
        document = await self.rt.store.version(run["flow_id"], run["flow_version"])
        info = {
            k: run[k]
            for k in ("id", "flow_id", "owner_subject", "owner_issuer", "grant_id", "input")
        }
        info.update(trace_id=run["trace_id"], context_id=run["context_id"])
        return {
            "run": info,
            "document": document,
            "version": run["flow_version"],
            "fork_step": run.get("fork_step"),
        }

    async def _document(self, read: dict[str, Any]) -> FlowDocument:
        """The flow document of what `_read` returned, parsed once per process
        (a "begin" recorded before it gave the version is parsed from itself)."""
        if read.get("version") is None:
            return FlowDocument.model_validate(read["document"])
        return await self.rt.store.parsed(read["run"]["flow_id"], int(read["version"]))

    async def _finish(self, state: str, reason: str, output: Any) -> None:
        text = "done" if state == "completed" else reason
        # The steps' usage, summed, goes with the run's task as any agent's
        # does (`adapters.usage`): a flow called as a step of another flow
        # reports what its own steps used to its caller's record.
        usage = await self.rt.store.run_usage(self.run_id)
        metadata = {"usage": usage.model_dump(mode="json", exclude_none=True)} if usage else None
        await self.rt.publish(self.info, state, text, output, metadata=metadata)
        grant = self.info["grant_id"]
        await self.rt.delegations.record_event(
            AuditEvent(
                event="flow.run",
                trace_id=self.info["trace_id"],
                subject=self.info["owner_subject"],
                subject_issuer=self.info["owner_issuer"],
                decision="allow",
                outcome=state,
                target=self.info["flow_id"],
                detail=f"run {self.run_id} (grant {grant}) {state}: {text}"[:2000],
            )
        )

    async def mark(self, step_id: str, kind: str, state: str, **values: Any) -> None:
        finished = now() if state not in ("running", "waiting", ASKING, HELD) else None
        if finished is not None:
            # A step settled at once (a route, a skip) started then; for any
            # other the record keeps the start it has (`step_records`).
            values.setdefault("started_at", finished)
        await self.rt.store.set_step(
            self.run_id,
            step_id,
            kind=kind,
            state=state,
            trace_id=self.info["trace_id"],
            finished_at=finished,
            replayable=True,
            **values,
        )

    async def _skip(self, step_id: str, why: str, step: AnyStep) -> None:
        """``step`` skipped, recorded as ``step_id`` (this round's id)."""
        await self.mark(step_id, "skipped", "skipped", error=why)
        loops.skipped(self.ctx, step)

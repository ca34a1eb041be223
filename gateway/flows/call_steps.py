"""A call step as a part of `gateway.flows.runner.FlowRun`: its budget reserved,
its span, its fallback, its record -- around `gateway.flows.calls.StepCall`,
which decides and sends the one call.

The walk, the fan-outs (`fanout_map`, `fanout_parallel`) and the step kinds
that wait for someone (`reviews`) all make a call the same way, through
`CallSteps.call_attempt`; a call given up on, or stopped with its run, has
its agent's task cancelled here (`give_up`, the cancel of a run).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from typing import Any

from adapters import spans
from gateway.flows import deep_approvals
from gateway.flows.calls import StepCall
from gateway.flows.costs import BudgetSpent, priced, reserve_budget
from gateway.flows.definition import CallStep
from gateway.flows.expressions import evaluate
from gateway.flows.outcomes import ASKING, HELD, RETRYING, failed, now
from gateway.flows.questions import Answer
from gateway.flows.runtime import FlowRuntime, GrantUnusable, caller_of
from gateway.flows.step_admission import CallContext
from gateway.flows.target_checks import as_fallback
from registry.tables import as_utc

logger = logging.getLogger(__name__)


class CallSteps:
    """The call steps of a run (mixed into `FlowRun`, which holds the run's
    record and marks its steps)."""

    rt: FlowRuntime
    run_id: str
    info: dict[str, Any]
    ctx: dict[str, Any]

    async def mark(self, step_id: str, kind: str, state: str, **values: Any) -> None:
        raise NotImplementedError

    async def call_attempt(
        self,
        step: CallStep,
        parent: str | None,
        scope: dict[str, Any] | None = None,
        reply: Answer | None = None,
        approved: bool = False,
    ) -> dict[str, Any]:
        """One call step (a DBOS step: its result is recorded once it returns).
        ``scope``: what its expressions read besides the run's (a map's item);
        ``reply``: the run's user's answer to the agent's question, sent to
        the task that asked instead of a new message (`gateway.flows.questions`);
        ``approved``: a human approved the call the policy holds (`reviews.called`)."""
        target = step.call
        row, grant = await self.rt.store.enter_step(
            self.run_id, step.id, self.info["grant_id"], current=parent is None
        )
        # The budget reserved before anything new is sent (a call, an
        # answer): spent meanwhile, or too little left, the run stops. A call
        # a crash left in flight is followed, not given up, on what it
        # reserved before (`gateway.flows.costs`).
        in_flight = bool(row is not None and row.get("state") == "running" and row.get("sent_at"))
        reserved = in_flight
        if reply is not None or not in_flight:
            targets = [target.target]
            if step.fallback is not None:
                targets.append(as_fallback(step).call.target)
            try:
                reserved = await reserve_budget(
                    self.rt, self.info, step.id, targets, grant["expires_at"]
                )
            except BudgetSpent as spent:
                await self.mark(step.id, "call", "failed", error=str(spent), parent=parent)
                return {**failed(str(spent)), "fatal": True}
        try:
            return await self._call_and_record(step, parent, scope, reply, approved, row, grant)
        finally:
            if reserved:  # its cost recorded by now, if it has one
                await self.rt.store.reservations.release(self.run_id, step.id)

    async def _call_and_record(
        self,
        step: CallStep,
        parent: str | None,
        scope: dict[str, Any] | None,
        reply: Answer | None,
        approved: bool,
        row: dict[str, Any] | None,
        grant: dict[str, Any],
    ) -> dict[str, Any]:
        target = step.call
        base: dict[str, Any] = {
            "kind": "call",
            "parent": parent,
            "target": target.target,
            "action": target.skill,
            "trace_id": self.info["trace_id"],
            "started_at": row["started_at"] if row and row["started_at"] else now(),
        }
        # A span per step, in the run's trace (the one its audit records
        # carry), whichever replica or restart runs it.
        with spans.span("switchboard.flow.step", trace_id=self.info["trace_id"]) as span:
            if span is not None:
                span.set_attributes(
                    {
                        "switchboard.flow": self.info["flow_id"],
                        "switchboard.flow.run": self.run_id,
                        "switchboard.flow.step": step.id,
                        "switchboard.target": target.target,
                        "switchboard.action": target.skill or "",
                    }
                )
            try:
                outcome = await self._with_fallback(step, row, base, scope, grant, reply, approved)
            except asyncio.CancelledError:
                await asyncio.shield(self._cancelled(step))
                raise
            if span is not None:
                span.set_attribute("switchboard.outcome", str(outcome["state"]))
        usage = priced(self.rt, str(base["target"]), outcome)
        if usage:
            outcome["usage"] = usage
        if outcome["state"] not in (RETRYING, ASKING, HELD):
            took = (now() - as_utc(base["started_at"])).total_seconds()
            for listener in self.rt.step_listeners:
                listener(str(outcome["state"]), took)
        await self.mark(
            step.id,
            "call",
            outcome["state"],
            output=outcome["output"],
            error=outcome["error"],
            # Only when reported: a JSON column takes None as JSON null, not SQL NULL.
            **({"usage": outcome["usage"]} if outcome.get("usage") else {}),
            **{k: base[k] for k in ("parent", "target", "action", "started_at")},
        )
        return outcome

    async def _with_fallback(
        self,
        step: CallStep,
        row: dict[str, Any] | None,
        base: dict[str, Any],
        scope: dict[str, Any] | None,
        grant: dict[str, Any] | None = None,
        reply: Answer | None = None,
        approved: bool = False,
    ) -> dict[str, Any]:
        """The call, and its fallback when it failed. The step's record names
        the target in flight, so a run resumed after a crash during the
        fallback goes on with the fallback (re-attaching to it), not with the
        call that had already failed."""
        fallback = as_fallback(step) if step.fallback is not None else None
        in_fallback = (
            fallback is not None
            and row is not None
            and row.get("target") == fallback.call.target
            and row.get("action") == fallback.call.skill
            and (fallback.call.target, fallback.call.skill) != (step.call.target, step.call.skill)
        )
        if not in_fallback:
            outcome = await self._call_once(step, row, base, scope, grant, reply, approved)
            if fallback is None or outcome["state"] != "failed" or outcome.get("fatal"):
                return outcome
            logger.info("flow run %s: step %s failed, calling its fallback", self.run_id, step.id)
            row = None  # the fallback is a new call
        assert fallback is not None
        base.update(target=fallback.call.target, action=fallback.call.skill)
        # Made as the primary was (answered, approved) only when it is the
        # fallback that is in flight (its own held call, its own question).
        in_flight = row is not None
        outcome = await self._call_once(
            fallback,
            row,
            base,
            scope,
            reply=reply if in_flight else None,
            approved=approved and in_flight,
        )
        return {**outcome, "fallback": True}

    async def _call_once(
        self,
        step: CallStep,
        row: dict[str, Any] | None,
        base: dict[str, Any],
        scope: dict[str, Any] | None = None,
        grant: dict[str, Any] | None = None,
        reply: Answer | None = None,
        approved: bool = False,
    ) -> dict[str, Any]:
        """``grant``: the run's grant as read when the step began (a fallback
        reads it again: the first call may have taken long)."""
        try:
            if grant is not None:
                caller = caller_of(grant)
            else:
                caller = await self.rt.caller(self.info["grant_id"])
        except GrantUnusable as exc:
            return {**failed(str(exc)), "fatal": True}
        context = {**self.ctx, **scope} if scope else self.ctx
        try:
            arguments = evaluate(step.input, context) if step.input is not None else None
            text = evaluate(step.message, context) if step.message is not None else None
        except Exception as exc:
            return failed(f"input: {exc}")
        if arguments is not None and not isinstance(arguments, dict):
            return failed(f"input must be an object; it is {type(arguments).__name__}")
        if text is not None and not isinstance(text, str):
            text = str(text)
        base["input"] = {"input": arguments, "message": text}
        # The step's calls carry its txn, and so do its agent's calls onwards.
        caller = dataclasses.replace(caller, txn=deep_approvals.txn(self.run_id, step.id))
        call = CallContext(self.run_id, self.info["trace_id"], caller)
        calling = StepCall(self.rt, call, step, approved=approved)
        if reply is not None:
            return await calling.answer(reply, row or {}, base)
        return await calling.run(arguments, text, row, base)

    async def give_up(self, step: CallStep, ended: dict[str, Any]) -> None:
        """A step whose agent's question went unanswered (`reviews.called`):
        the agent's task is cancelled, best effort, and the record ends as
        the step did -- not left asking."""
        with contextlib.suppress(Exception):
            caller = await self.rt.caller(self.info["grant_id"])
            call = CallContext(self.run_id, self.info["trace_id"], caller)
            await StepCall(self.rt, call, step).cancel_upstream()
        state = "canceled" if ended["state"] == "canceled" else "failed"
        await self.mark(step.id, "call", state, error=str(ended.get("error")))

    async def _cancelled(self, step: CallStep) -> None:
        """The step was stopped: by a cancel of the run (its agent's task is
        cancelled too), or by a shutdown (left as it is, to go on at restart)."""
        with contextlib.suppress(Exception):
            run = await self.rt.store.run_row(self.run_id)
            if run["state"] == "canceled":
                caller = await self.rt.caller(self.info["grant_id"])
                call = CallContext(self.run_id, self.info["trace_id"], caller)
                await StepCall(self.rt, call, step).cancel_upstream()
                await self.mark(step.id, "call", "canceled", error="the run was cancelled")

"""One call step: an agent's skill or an MCP tool, on the run's grant.

Each attempt is one pass through the pipeline: `Delegations.admit` decides
with the policy in force now (the flow in the actor chain), mints a token for
this target only and audits (`gateway.flows.step_admission`); then the A2A
front door's own handler for the agent (`Agents.handler_for`: an A2A agent,
a gateway-run agent, another flow) or the MCP federation makes the call,
recording and auditing it as for any caller.

Sending at most once. The step's row (`flow_steps`) gets ``sent_at`` just
before a message is sent and ``upstream_task_id`` as soon as the agent names
its task (`SendMessage` with ``returnImmediately``), before waiting for it.
When the step runs again after a crash (DBOS re-runs a step that never
recorded its result):

* with an upstream task id: it re-attaches -- polls that task -- and sends
  nothing;
* sent, but no task id known (the crash fell between sending and the answer,
  or the target has no tasks, like an MCP tool): sent again only if the target
  is idempotent, else the step fails saying its outcome is unknown;
* never sent: sent.

What each case records is `gateway.flows.at_most_once`'s.

Every outcome is a plain dict -- ``state`` (completed, failed, retrying),
``output``, ``text``, ``error`` -- which DBOS records as the step's result.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from gateway.agents.admission import Admission
from gateway.agents.exchange import AgentMessage, Unsendable
from gateway.connections.errors import ScopeRequired
from gateway.delegation.permits import Permit
from gateway.delegation.pipeline import Grant
from gateway.delegation.tasks import Owner
from gateway.flows import at_most_once, deep_approvals, tool_steps
from gateway.flows.agent_tasks import WAITING, AgentTask, status_key
from gateway.flows.definition import CallStep
from gateway.flows.outcomes import (
    RETRYING,
    auth_required,
    failed,
    held,
    retrying,
)
from gateway.flows.questions import Answer
from gateway.flows.runtime import FlowRuntime, is_idempotent
from gateway.flows.step_admission import CallContext, StepAdmission
from gateway.flows.step_clock import StoppedClock
from gateway.flows.step_errors import NeedsApproval, NeedsConsent, StepFailed
from gateway.http.json_body import JsonRefused, check_value
from registry.tables import as_utc
from registry.vendor_cards import gateway_run_kind


def _now() -> datetime:
    return datetime.now(UTC)


class StepCall:
    """Calls one step's target for one run (`run` is its entry point)."""

    def __init__(
        self, runtime: FlowRuntime, call: CallContext, step: CallStep, *, approved: bool = False
    ) -> None:
        self.rt = runtime
        self.call = call
        self.step = step
        # A human approved this call on the desk (the policy holds each one).
        self.approved = approved
        self.admission = StepAdmission(runtime, call, step.call.target, approved=approved)
        self.clock: StoppedClock | None = None

    def idempotent(self) -> bool:
        return is_idempotent(self.rt, self.step)

    async def run(
        self,
        arguments: dict[str, Any] | None,
        text: str | None,
        row: Mapping[str, Any] | None,
        base: Mapping[str, Any],
    ) -> dict[str, Any]:
        """One attempt: its outcome, or `retrying` when another is due (the run
        waits the backoff as a durable DBOS sleep, `reviews.called`). ``row``:
        the step's record as found; ``base``: what every write of it carries."""
        step = self.step
        # After a crash the last attempt goes on (re-attaching, or refusing to
        # send twice) -- or, ended with a retry due, the next: none is made twice.
        attempt = max(0 if row is None else int(row["attempts"]), 1) - 1
        known: Mapping[str, Any] = row or {}
        if row is not None and row.get("state") == RETRYING:
            attempt, known = int(row["attempts"]), {}
        pending = {**base, "attempts": attempt + 1, "state": "running"}
        try:
            async with asyncio.timeout(step.timeout_seconds) as timeout:
                self.clock = StoppedClock(timeout)
                return await self._attempt(arguments, text, known, pending)
        except TimeoutError:
            reason = f"timed out after {step.timeout_seconds:g} s"
            await self.cancel_upstream()
        except StepFailed as exc:
            if exc.final:
                return failed(str(exc))
            reason = str(exc)
        except NeedsApproval as held_back:
            return held(str(held_back))
        except NeedsConsent as needs:
            needed = needs.needed
            return auth_required(
                f"{step.call.target}: {needed.reason}; the run's user connects at "
                f"{needed.connect_url}",
                needed.upstream,
                needed.connect_url,
                needed.scope if isinstance(needed, ScopeRequired) else None,
                needed.seen,
            )
        if attempt + 1 >= 1 + step.retries:
            return failed(reason)
        await self._write(**{**pending, "state": RETRYING, "error": reason})
        return retrying(reason, self.rt.settings.backoff(attempt))

    async def _attempt(
        self,
        arguments: dict[str, Any] | None,
        text: str | None,
        known: Mapping[str, Any],
        pending: dict[str, Any],
    ) -> dict[str, Any]:
        if self.step.call.agent is not None:
            return await self._agent(arguments, text, known, pending)
        return await self._tool(arguments, known, pending)

    async def _write(self, **values: Any) -> None:
        await self.rt.store.set_step(self.call.run_id, self.step.id, **values)

    # Agents --------------------------------------------------------------------------

    async def _agent(
        self,
        arguments: dict[str, Any] | None,
        text: str | None,
        known: Mapping[str, Any],
        pending: dict[str, Any],
    ) -> dict[str, Any]:
        target = self.step.call
        assert target.agent is not None
        # The coordination rules see each message that will be sent (not one followed).
        sent, followed = known.get("sent_at"), known.get("upstream_task_id")
        sends = not followed and (not sent or self.idempotent())
        inputs = ([arguments] if arguments is not None else []) if sends else None
        # Built before the call is decided: one that cannot be sent is not.
        message_id = f"{self.call.run_id}.{self.step.id}.{pending['attempts']}"
        message = self._message(message_id, arguments, text) if sends else None
        async with self.admission.decide(target.agent, target.skill, inputs=inputs) as grant:
            answer = await self._agent_call(grant, known, pending, message)
        if answer is None:  # closed with nothing sent, so with nothing to record
            raise StepFailed(at_most_once.outcome_unknown(self.step), final=True)
        return answer

    async def _agent_call(
        self,
        grant: Grant,
        known: Mapping[str, Any],
        pending: dict[str, Any],
        message: AgentMessage | None,
    ) -> dict[str, Any] | None:
        """The step's call to its agent, decided: its task followed where it
        was sent already, else sent; None for a call sent before a crash
        whose outcome is unknown and that is not sent again."""
        token = self.admission.shown_token(grant)
        # Re-attached while it showed an approval inside its agent: said again once it goes on.
        holding = known.get("approval_id") if known.get("state") == "waiting" else None
        agent = self._agent_task(grant, holding=holding, since=known.get("sent_at"))
        if holding is not None and self.clock is not None:
            # Re-attached while a human decides: the clock stands still from
            # the start (the first look sees the same approval, said before).
            self.clock.hold(True)
        task_id = known.get("upstream_task_id")
        if task_id:
            await self._interrupted(known, f"re-attached to task {task_id}")
            await self._write(**pending, token=token)
            return await agent.follow(str(task_id))
        if known.get("sent_at") is not None and not self.idempotent():
            await self._interrupted(known, "not sent again: its outcome is unknown")
            await self._write(**pending, token=token)
            return None
        if known.get("sent_at") is not None:
            await self._interrupted(known, "sent again: the target is idempotent")
        assert message is not None  # as it sends
        # Written before sending: after a crash, "sent" without a task id.
        sending = self._write(**pending, token=token, sent_at=_now(), upstream_task_id=None)
        await at_most_once.ended_unsent_if_failed(self.rt, self.step, grant, sending)
        return await self._send(agent, grant, message)

    def _agent_task(
        self,
        grant: Grant,
        continues: str | None = None,
        answered: str | None = None,
        holding: str | None = None,
        since: datetime | None = None,
    ) -> AgentTask:
        """The step's exchange with the agent ``grant`` admits it to, as its
        caller; ``continues``: the task a message is admitted to continue;
        ``since``: when it began (the call was sent), if it has."""
        caller, target = self.call.caller, self.step.call
        owner = Owner(caller.subject, caller.issuer, caller)
        admission = Admission(grant, owner, frozenset(), skill=target.skill, task_id=continues)
        show = deep_approvals.shown(self.rt, self.call.run_id, self.step.id, self._write)
        agent = str(target.agent)
        kind = gateway_run_kind(grant.card)
        return AgentTask(
            self.rt,
            self.call.run_id,
            agent,
            target.target,
            self.rt.handler_for(grant.card),
            admission,
            self._write,
            answered,
            # A flow's approval, read from its task, is shown as this run's
            # (`deep_approvals`); any other agent's task is taken at its word,
            # and only its calls onwards held here are shown (``onwards``).
            held=show if kind == "flow" else None,
            holding=holding,
            clock=self.clock.hold if self.clock is not None else None,
            # An agent of its own (not run here) may call onwards.
            onwards=(
                deep_approvals.onwards(
                    self.rt, owner, caller, agent, show, as_utc(since) if since else _now()
                )
                if kind is None
                else None
            ),
        )

    def _message(
        self, message_id: str, arguments: dict[str, Any] | None, text: str | None, **continued: str
    ) -> AgentMessage:
        """The step's message (``continued``: the task and context it goes on
        with); one that cannot be built fails the step for good."""
        message = AgentMessage(message_id, arguments, text, self.step.call.skill, **continued)
        try:
            message.check()  # one that cannot be built is not decided
        except Unsendable as exc:
            raise StepFailed(f"{self.step.call.target}: {exc}", final=True) from None
        return message

    async def _send(self, agent: AgentTask, grant: Grant, message: AgentMessage) -> dict[str, Any]:
        streams = bool((grant.card.get("capabilities") or {}).get("streaming"))
        return await agent.send(message, streams)

    async def answer(
        self, reply: Answer, row: Mapping[str, Any], base: Mapping[str, Any]
    ) -> dict[str, Any]:
        """The run's user's ``reply`` to the agent's question, sent to the same
        task of the same agent (decided and recorded as any message) while the
        task still shows the status that asked, then the task followed again:
        its outcome. Never retried: a failure is the step's (its ``on_error``
        applies)."""
        pending = {**base, "attempts": max(int(row.get("attempts") or 1), 1), "state": "running"}
        try:
            async with asyncio.timeout(self.step.timeout_seconds) as timeout:
                self.clock = StoppedClock(timeout)
                return await self._answer(reply, row, pending)
        except TimeoutError:
            await self.cancel_upstream()
            waited = f"{self.step.timeout_seconds:g} s"
            return failed(f"timed out after {waited}, after answer {reply.round}")
        except StepFailed as exc:
            return failed(str(exc))
        except (NeedsApproval, NeedsConsent) as stopped:
            # An answer is part of the call the user started: it is not held
            # for a desk of its own, nor waits for a connection.
            return {**failed(f"{self.step.call.target}: {stopped}"), "fatal": True}

    async def _answer(
        self,
        reply: Answer,
        known: Mapping[str, Any],
        pending: dict[str, Any],
    ) -> dict[str, Any]:
        target = self.step.call
        assert target.agent is not None
        task_id = str(known.get("upstream_task_id") or "")
        if not task_id:
            raise StepFailed(f"{target.agent} asked, but its task is not known", final=True)
        data, text = reply.reply.get("data"), reply.reply.get("text")
        inputs = [data] if data else []
        async with self.admission.decide(target.agent, target.skill, inputs=inputs) as grant:
            token = self.admission.shown_token(grant)
            agent = self._agent_task(
                grant, continues=task_id, answered=reply.asked, since=known.get("sent_at")
            )
            current = await agent.get(task_id)
            if current.status.state not in WAITING or status_key(current) != reply.asked:
                # It no longer asks what was answered: the answer went before a
                # crash, or the agent went on (or asked again) by itself.
                # Followed, not sent (again).
                await self._write(**pending, token=token)
                return await agent.follow(task_id, current)
            answered = {"round": reply.round, "text": text, "data": data}
            recorded = {**(pending.get("input") or {}), "answer": answered}
            await self._write(**{**pending, "input": recorded}, token=token)
            message = self._message(
                f"{self.call.run_id}.{self.step.id}.{pending['attempts']}.answer{reply.round}",
                data,
                text,
                task_id=task_id,
                context_id=current.context_id,
            )
            return await self._send(agent, grant, message)

    async def cancel_upstream(self) -> None:
        """Best effort: the agent's task of a step given up on is cancelled."""
        row = await self.rt.store.step_row(self.call.run_id, self.step.id) or {}
        task_id, agent = row.get("upstream_task_id"), self.step.call.agent
        if not task_id or agent is None:
            return
        with contextlib.suppress(Exception):
            async with self.admission.decide(agent, None, message=False) as grant:
                owner = Owner(self.call.caller.subject, self.call.caller.issuer, self.call.caller)
                admission = Admission(grant, owner, frozenset())
                await self.rt.handler_for(grant.card).cancel(admission, str(task_id))

    # MCP tools -----------------------------------------------------------------------

    async def _tool(
        self, arguments: dict[str, Any] | None, known: Mapping[str, Any], pending: dict[str, Any]
    ) -> dict[str, Any]:
        name = str(self.step.call.tool)
        try:  # the doors' rules for what an MCP upstream is sent (`AgentMessage.built`)
            check_value(arguments or {}, max_depth=None)
        except JsonRefused as exc:
            raise StepFailed(f"{name}: its arguments cannot be sent: {exc}", final=True) from None
        federation = self.rt.federation()
        if known.get("sent_at") is not None:
            tool = federation.known_tool(name)
            server = None if tool is None else tool.server_id
            if not self.idempotent():
                # Not sent, so not decided: the record keeps the token it went with.
                await self._interrupted(known, "not sent again: its outcome is unknown", server)
                await self._write(**pending)
                raise StepFailed(at_most_once.outcome_unknown(self.step), final=True)
            await self._interrupted(known, "sent again: the tool is idempotent", server)

        async def sending(permit: Permit) -> None:
            # Decided once, as every tool call is (`McpFederation.call_tool`):
            # "sent", with the token it goes with (`StepAdmission.shown_token`),
            # only once it will be: a tool awaiting approval, a server not
            # connected, a user without their connection send nothing. A failed
            # write ends the call unsent and recorded (`tool_calls.sending`).
            token = self.admission.shown_token(permit)
            await self._write(**pending, token=token, sent_at=_now())

        with tool_steps.refusals(name):
            result = await self.admission.waiting(
                name,
                lambda: federation.call_tool(
                    name,
                    arguments or {},
                    caller=self.call.caller,
                    trace_id=self.call.trace_id,
                    approved=self.approved,
                    on_sending=sending,
                ),
            )
        return tool_steps.outcome_of(name, result)

    async def _interrupted(
        self, known: Mapping[str, Any], then: str, target: str | None = None
    ) -> None:
        """The send a crash interrupted, recorded (`at_most_once.interrupted`)."""
        await at_most_once.interrupted(self.rt, self.call, self.step, known, then, target)

"""A `wait` for another agent's task: the run waits until a task delegated
through the gateway -- a booking, a shipment -- reaches one of the step's
``states`` (default: any end), and goes on with the task as the step's output.

**Whose task.** Only a task the run's user owns: it is read with
`TaskRecords.get`, the same owner-filtered read the A2A front door answers
`GetTask` with, so another user's task, and one that does not exist, are the
same "not found" (A2A 1.0 §3.1.3: never reveal that a task exists). The
step fails with that, naming neither an owner nor a state.

**On the run's rights.** Each look is decided as a call to that agent
would be (the run's grant, the policy in force now, an audit record
``flow.wait``): a revoked grant, or a policy that no longer lets the user
use the agent, ends the wait with the reason.

**How the run learns.** From the gateway's own record of the task, which
any call through the gateway moves (the user's `GetTask`, a stream, a
relayed push) and which, while the run waits, the gateway keeps moving by
following the task at its agent as the run's user (`task_follower`: on the
agent's stream, else by `GetTask`):

* at the start: the task may already be there (a recorded step);
* a wake-up: when the gateway records the task in a state the step waits
  for, or in an end -- the hooks `TaskRecords.state_listeners` and
  `ended_listeners` -- `TaskWakeUps` sends a DBOS message (topic
  ``task:<step id>``) to every run waiting on that task, on whichever
  replica it runs: durable, like an event posted to a run;
* a slow poll: the run looks at the record now and then even unwoken
  (`FlowSettings.checkpoint_poll_seconds` at first, doubling up to 15
  minutes: `gateway.flows.looks`), so a lost wake-up (a crash between the
  record and the message) delays it, never strands it.

The wait is the checkpoints' loop of recorded operations: read the record and
the clock (one step), then `DBOS.recv` for at most the time left (a durable
timer), so a run recovered after a crash waits only for what is left. A task
that ends in a state not waited for fails the step at once (an end is final);
none of the states in time: ``on_timeout`` fails the run or goes on with a
null output.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

from a2a.types import Part, Task, TaskState
from dbos import DBOS
from google.protobuf.json_format import MessageToDict
from sqlalchemy import and_, select
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.delegation.pipeline import DelegationDenied
from gateway.delegation.task_statements import MAX_ID_LENGTH
from gateway.delegation.tasks import TERMINAL_STATES, EndedTask, Owner
from gateway.flows import mailbox
from gateway.flows.definition import FlowDocument, WaitStep
from gateway.flows.expressions import evaluate
from gateway.flows.looks import next_look
from gateway.flows.outcomes import now
from gateway.flows.run_access import RunAccess
from gateway.flows.runtime import FlowRuntime, GrantUnusable
from gateway.flows.task_follower import following
from gateway.storage.flow_tables import flow_runs, flow_steps
from registry.store import AgentNotFound
from registry.tables import as_utc

logger = logging.getLogger(__name__)

EVENT = "flow.wait"
_REFRESH_SECONDS = 5.0  # how stale this replica's view of the waited agents may be


def topic(step_id: str) -> str:
    return f"task:{step_id}"


def state_name(state: str) -> str:
    """``completed`` -> ``TASK_STATE_COMPLETED`` (A2A 1.0 `TaskState`)."""
    return "TASK_STATE_" + state.upper()


async def wait(run: RunAccess, step: WaitStep) -> dict[str, Any]:
    spec = step.wait
    assert spec.task is not None
    try:
        task_id = evaluate(spec.task.id, run.ctx)
    except Exception as exc:  # a JMESPath runtime error
        task_id, refused = None, f"task.id: {exc}"
    else:
        refused = "" if isinstance(task_id, str) and task_id else f"task.id gave {task_id!r}"
    if refused:
        return await DBOS.run_step_async(
            {"name": f"waited {step.id}"}, _close, run, step, "", {"error": refused}
        )
    assert isinstance(task_id, str)
    if len(task_id) > MAX_ID_LENGTH or "\x00" in task_id:  # no task of ours has that id
        return await DBOS.run_step_async(
            {"name": f"waited {step.id}"}, _close, run, step, task_id, {"found": False}
        )
    opened = await DBOS.run_step_async({"name": f"wait {step.id}"}, _open, run, step, task_id)
    deadline = float(opened["deadline"])
    poll = run.rt.settings.checkpoint_poll_seconds
    agent = spec.task.agent
    wanted = frozenset(state_name(s) for s in spec.task_states)
    async with contextlib.AsyncExitStack() as following_it:
        followed = False
        looks = 0
        while True:
            seen = await DBOS.run_step_async({"name": f"look {step.id}"}, _look, run, step, task_id)
            looks += 1
            over = seen.get("error") or seen.get("task") is not None or not seen["found"]
            if over or seen["now"] >= deadline:
                break
            if not followed:
                # The task is there and not yet as waited for: followed at its
                # agent meanwhile (`task_follower`), until the wait is over.
                followed = True
                await following_it.enter_async_context(
                    following(run.rt, run.info, agent, task_id, topic(step.id), wanted, deadline)
                )
            await DBOS.recv_async(
                topic(step.id),
                timeout_seconds=max(0.01, min(deadline - seen["now"], next_look(poll, looks))),
            )
    return await DBOS.run_step_async(
        {"name": f"waited {step.id}"}, _close, run, step, task_id, seen
    )


async def _open(run: RunAccess, step: WaitStep, task_id: str) -> dict[str, Any]:
    assert step.wait.task is not None
    agent = step.wait.task.agent
    row = await run.rt.store.step_row(run.run_id, step.id)
    started = as_utc(row["started_at"]) if row and row["started_at"] else now()
    # Recorded as waiting on (agent, task) before the first look: an end
    # recorded from here on finds the run (`TaskWakeUps`), an earlier one the look.
    await run.rt.store.set_run(run.run_id, current_step=step.id)
    await run.mark(
        step.id,
        "wait",
        "waiting",
        target=agent,
        upstream_task_id=task_id,
        input={"agent": agent, "task": task_id, "states": list(step.wait.task_states)},
        started_at=started,
    )
    await run.rt.publish(run.info, "working", f"{step.id}: waiting for task {task_id} of {agent}")
    return {"deadline": started.timestamp() + step.wait.timeout_seconds}


async def _look(run: RunAccess, step: WaitStep, task_id: str) -> dict[str, Any]:
    """The task as the gateway last recorded it, if the run's user owns it;
    the whole task only once the wait is over (a step's result is stored)."""
    assert step.wait.task is not None
    refused = await _refused(run, step.wait.task.agent)
    if refused is not None:
        return {"found": True, "now": time.time(), "error": refused}
    owner = Owner(run.info["owner_subject"], run.info["owner_issuer"])
    task = await run.rt.tasks.get(step.wait.task.agent, owner, task_id)
    seen: dict[str, Any] = {"found": task is not None, "now": time.time()}
    if task is not None:
        state = TaskState.Name(task.status.state)
        wanted = {state_name(s) for s in step.wait.task_states}
        seen["state"] = state
        if state in wanted or state in TERMINAL_STATES:
            seen["task"] = task_view(step.wait.task.agent, task)
    return seen


async def _refused(run: RunAccess, agent: str) -> str | None:
    """Why the run may not read the agent's task now, if it may not: each look
    is decided as a call to the agent is -- on the run's grant (revoked or
    expired: the wait ends), against the policy in force, audited -- since
    what the step reads is that agent's answer to the user. No token is sent
    anywhere; the one the decision mints is not used."""
    try:
        async with run.rt.look_at(run.info, agent, EVENT, sends=False):
            pass
    except GrantUnusable as exc:
        return str(exc)
    except DelegationDenied as denied:
        return f"refused by the policy: {'; '.join(denied.decision.reasons)}"
    except AgentNotFound:
        return f"no agent {agent}"
    return None


async def _close(
    run: RunAccess, step: WaitStep, task_id: str, seen: Mapping[str, Any]
) -> dict[str, Any]:
    assert step.wait.task is not None
    agent, states = step.wait.task.agent, step.wait.task_states
    error: str | None = seen.get("error")
    task: dict[str, Any] | None = seen.get("task")
    if error is None and not seen.get("found"):
        # The same words for another user's task and for none at all.
        error = f"task {task_id!r} of agent {agent} not found"
    elif error is None and task is not None:
        if task["state"] in states:
            await run.mark(step.id, "wait", "completed", output=task)
            await run.rt.publish(run.info, "working", f"{step.id}: task {task_id} {task['state']}")
            return {"state": "completed", "output": task, "text": task["text"], "error": None}
        error = f"task {task_id} of agent {agent} ended {task['state']}, not {' or '.join(states)}"
    if error is None:
        error = f"task {task_id} of agent {agent} not {' or '.join(states)} within "
        error += f"{step.wait.timeout_seconds:g} s"
        if step.wait.on_timeout == "continue":
            await run.mark(step.id, "wait", "completed", output=None, error=error)
            return {"state": "completed", "output": None, "text": "", "error": None}
    await run.mark(step.id, "wait", "failed", error=error)
    return {"state": "failed", "output": None, "text": "", "error": error, "fatal": True}


def task_view(agent: str, task: Task) -> dict[str, Any]:
    """The step's output: the task as recorded -- ``result`` is its data parts
    merged (else its text), as a call step's output is."""
    parts: list[Part] = [p for artifact in task.artifacts for p in artifact.parts]
    if not parts:
        parts = list(task.status.message.parts)
    data: dict[str, Any] | None = None
    for part in parts:
        if part.HasField("data"):
            value = MessageToDict(part.data)
            data = {**(data or {}), **value} if isinstance(value, dict) else data
    text = " ".join(p.text for p in parts if p.HasField("text"))
    return {
        "id": task.id,
        "agent": agent,
        "state": TaskState.Name(task.status.state).removeprefix("TASK_STATE_").lower(),
        "result": data if data is not None else text,
        "text": text,
        "artifacts": [MessageToDict(a) for a in task.artifacts],
    }


class TaskWakeUps:
    """Wakes the runs waiting on a task when the gateway records it in a
    state they wait for, or in an end.

    Only agents some flow's current version waits on are looked up (a set
    read again every few seconds and at each registration here): every other
    task's end costs a dictionary lookup. A run of an older version waiting
    on an agent the current versions no longer name is found by its poll.
    """

    def __init__(self, rt: FlowRuntime, db: AsyncEngine, launched: Callable[[], bool]) -> None:
        self.rt = rt
        self.db = db
        self._launched = launched  # whether DBOS runs in this process
        self._waited: dict[str, set[str]] = {}  # agent id -> flows waiting on its tasks
        self._loaded = -float("inf")
        self._waking: set[asyncio.Task[None]] = set()
        self._reading = asyncio.Lock()

    def forget(self) -> None:
        """A flow was registered here: read the waited agents again."""
        self._loaded = -float("inf")

    async def waited(self) -> Mapping[str, set[str]]:
        # One reading at a time: the records that find it stale under load
        # wait for it instead of each reading every flow again.
        async with self._reading:
            if time.monotonic() - self._loaded > _REFRESH_SECONDS:
                waited: dict[str, set[str]] = {}
                for record in await self.rt.store.list():
                    document = FlowDocument.model_validate(record.document)
                    for step in document.steps:
                        if isinstance(step, WaitStep) and step.wait.task is not None:
                            waited.setdefault(step.wait.task.agent, set()).add(record.id)
                self._waited, self._loaded = waited, time.monotonic()
        return self._waited

    def on_state(self, agent_id: str, task_id: str, state: str) -> None:
        """A task recorded in a state that is not an end (`on_ended` has
        those): the runs waiting for that state are woken. Called on the
        recording path, so it only looks at what it knows of the waited
        agents, and starts the rest of the work beside it."""
        if state in TERMINAL_STATES or not self._launched():
            return
        fresh = time.monotonic() - self._loaded <= _REFRESH_SECONDS
        if fresh and agent_id not in self._waited:
            return
        waking = asyncio.create_task(self._wake_logged(agent_id, task_id, state))
        self._waking.add(waking)
        waking.add_done_callback(self._waking.discard)

    async def _wake_logged(self, agent_id: str, task_id: str, state: str) -> None:
        try:
            await self._wake(agent_id, task_id, state)
        except Exception:  # an outage: the run's own slow look still finds it
            logger.exception("waking the runs waiting on task %s of %s", task_id, agent_id)

    async def on_ended(self, ended: EndedTask) -> None:
        await self._wake(ended.agent_id, ended.task_id, ended.state)

    async def _wake(self, agent_id: str, task_id: str, state: str) -> None:
        """Every run waiting on the task for ``state`` (any end wakes every
        one: an end is final) gets a message."""
        flows = (await self.waited()).get(agent_id)
        if not flows or not self._launched():
            return
        runs, steps = flow_runs.c, flow_steps.c
        async with self.db.connect() as conn:
            waiting = (
                await conn.execute(
                    select(steps.run_id, steps.step_id, steps.input)
                    .select_from(
                        flow_runs.join(
                            flow_steps,
                            and_(steps.run_id == runs.id, steps.step_id == runs.current_step),
                        )
                    )
                    .where(
                        runs.flow_id.in_(sorted(flows)),  # ix_flow_runs_flow
                        runs.finished_at.is_(None),
                        steps.kind == "wait",
                        steps.state == "waiting",
                        steps.target == agent_id,
                        steps.upstream_task_id == task_id,
                    )
                )
            ).all()
        name = state.removeprefix("TASK_STATE_").lower()
        for row in waiting:
            wanted = (row.input or {}).get("states") or ()
            if state not in TERMINAL_STATES and name not in wanted:
                continue
            # Sent outside whatever DBOS context recorded the task (a step of
            # another run calling that agent): a message to another workflow.
            send = mailbox.send(row.run_id, {"state": name}, topic(row.step_id))
            await asyncio.create_task(send, context=contextvars.Context())

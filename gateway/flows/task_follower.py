"""Following, at its agent, the task a `wait` step waits on.

A `wait: {task: ...}` reads the gateway's record of the task
(`gateway.flows.task_waits`). That record moves when a call through the
gateway sees the task move -- the user's `GetTask`, a stream, a relayed
push -- and a task nobody looks at would never move there. So while a run
waits, the process running it follows the task at the agent itself, as the
run's user, through the agent's own operations (`gateway.agents.exchange`,
which the A2A door runs too): decided on the run's grant, minted for that
agent only, audited and recorded as any call of the user's
(`gateway.agents.handler`):

* an agent that streams: `SubscribeToTask`, subscribed again while the task
  goes on (a stream ends when the task stops to ask, or at the gateway's
  `stream_max_seconds`); an agent that refuses to subscribe is asked with:
* an agent that does not stream but sends push notifications: it is given
  a watch of the gateway's own on the task (`PushConfigs.watch_task`: a
  relay that records each state it pushes and forwards nothing), and the
  task is asked about with `GetTask` once, then only every
  `WATCHED_LOOK_SECONDS` in case a push was lost; the watch is removed
  when the wait ends;
* otherwise `GetTask`, backing off from `FlowSettings.poll_min_seconds` to
  `FOLLOW_MAX_SECONDS`, and again from `MOVED_SECONDS` whenever the task
  changed state (a heartbeat "still working" is no change). A subscription
  the agent ends saying it has no live stream for the task (the a2a-sdk
  does so once a task stops to ask) is followed by `GetTask` from then on.

Each state the agent reports is recorded (`TaskRecords`), and a record in a
state the wait is for (or an end) wakes the run at once -- the follower
wakes it itself, and so does the record (`TaskWakeUps`) for any call's: the
wait learns of ``input_required`` -- any state -- from the agent's own stream,
not from a poll of the record. The record's slow poll stays as the backstop.

**Where it runs, without a lease.** The follower lives and dies with the
wait's loop on the process that runs the workflow (DBOS runs a workflow on
one process at a time; a run recovered elsewhere after a crash starts its
follower there), so two replicas never follow one wait. It runs in a context
of its own, outside the workflow's: it makes no DBOS operation of the run's,
so what it changes in the run is only when the run looks (a message on
the wait's topic, as any wake-up).

**What it never does.** It follows only a task the run's user owns (the
handler refuses anyone else's, as for `GetTask`), stops once the task ends,
and never follows a task the gateway runs itself (a vendor agent, a flow, an
MCP server as an agent: their records are written here already). A look
the user's rate limit refuses waits for it. When the run may no longer act
on the agent (a revoked grant, a policy that refuses or holds its calls for
approval) it stops and wakes the run, whose own look says why.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any, NoReturn

from a2a.types import Task, TaskState
from a2a.utils.errors import A2AError, TaskNotFoundError, UnsupportedOperationError

from gateway.agents.admission import Admission
from gateway.agents.exchange import AgentOperations
from gateway.agents.push_configs import PushConfigs
from gateway.delegation.permits import RateLimited
from gateway.delegation.pipeline import DelegationDenied, Grant
from gateway.delegation.push import watch_id
from gateway.delegation.runs import TERMINAL
from gateway.delegation.tasks import Owner
from gateway.flows import mailbox
from gateway.flows.messages import apply_event
from gateway.flows.runtime import FlowRuntime, GrantUnusable
from registry.store import AgentNotFound
from registry.vendor_cards import gateway_run_kind

logger = logging.getLogger(__name__)

EVENT = "flow.wait"
# The longest pause between two looks at a task whose agent does not stream
# (each look is a `GetTask`, audited): a day's wait asks ~3,000 times.
FOLLOW_MAX_SECONDS = 30.0
# The soonest a task that changed state is looked at again.
MOVED_SECONDS = 1.0
# Between two looks at a task whose agent pushes its states to the gateway's
# watch: the push is how the run learns; a look finds one that was lost.
WATCHED_LOOK_SECONDS = 300.0
# The longest the removal of a watch may hold up the end of a wait.
UNWATCH_SECONDS = 5.0
# A watched task is looked at this long before the wait's end, in case a
# push was lost: the run does not time out on a task that ended.
LOOK_BEFORE_END_SECONDS = 3.0


class Stop(Exception):
    """Following ends: the task ended, or may not be followed any more."""


class TaskFollower:
    """Follows one task of ``agent`` for the run ``info`` (its row), telling
    ``wake`` when the run should look at once."""

    def __init__(
        self,
        rt: FlowRuntime,
        info: Mapping[str, Any],
        agent: str,
        task_id: str,
        wake: Callable[[], Awaitable[None]],
        wanted: frozenset[str] = frozenset(),
        topic: str = "",
        deadline: float | None = None,
    ) -> None:
        self.rt = rt
        self.info = info
        self.agent = agent
        self.task_id = task_id
        self.wake = wake
        self.wanted = wanted  # the states the wait is for, as A2A names them
        self._streams = True
        self._seen: int | None = None  # the last state seen
        # The gateway's own push config on the task (one per run and wait
        # step: set again after a restart, it replaces the last). ``watched``
        # from before it is asked for, so a watch half made is removed too.
        self.watch_id = watch_id(str(info["id"]), topic)
        self._watch_tried = False
        self.watched = False
        self.deadline = deadline  # the wait's end (time.time()): looked at just before it

    async def run(self) -> None:
        delay = self.rt.settings.poll_min_seconds
        while True:
            try:
                moved = await self._once()
            except Stop:
                return
            except asyncio.CancelledError:
                raise
            except RateLimited as limited:  # the user's own limit: waited out, not a refusal
                await asyncio.sleep(max(float(limited.retry_after), delay))
                moved = False
            except Exception as exc:  # an outage, the agent down: the next look
                logger.info(
                    "run %s: following task %s of %s: %s",
                    self.info["id"],
                    self.task_id,
                    self.agent,
                    exc,
                )
                moved = False
            # A task that changed state is looked at again soon, but no sooner
            # than MOVED_SECONDS; a status that only says "still working" (an
            # agent's heartbeat) is not a change and lets the wait lengthen.
            delay = MOVED_SECONDS if moved else delay
            if self.watched:  # the agent pushes each state: a look only now and then
                delay = self._watched_delay()
            await asyncio.sleep(delay)
            delay = min(delay * 2, FOLLOW_MAX_SECONDS)

    async def _once(self) -> bool:
        """One subscription or one `GetTask`: whether the task changed state."""
        async with contextlib.AsyncExitStack() as held:
            grant = await self._admitted(held)
            if grant is not None:
                return await self._looked(grant)
        raise Stop  # the gateway records that task itself: nothing was asked

    async def _looked(self, grant: Grant) -> bool:
        agent = self.rt.handler_for(grant.card)
        caller = grant.caller
        admission = Admission(grant, Owner(caller.subject, caller.issuer, caller), frozenset())
        capabilities = grant.card.get("capabilities") or {}
        if self._streams and capabilities.get("streaming"):
            try:
                return await self._subscribed(agent, admission)
            except UnsupportedOperationError:
                self._streams = False
        if not self._watch_tried and capabilities.get("pushNotifications"):
            await self._watch(agent, admission)
        try:
            task = await agent.task(admission, self.task_id)
        except TaskNotFoundError:
            await self._stop()
        if task is None:
            await self._stop()
        return await self._saw(task)

    async def _subscribed(self, agent: AgentOperations, admission: Admission) -> bool:
        moved, heard = False, False
        task = Task(id=self.task_id)
        try:
            events = agent.subscribe(admission, self.task_id)
            async with contextlib.aclosing(events):
                async for event in events:
                    heard = True
                    apply_event(task, event)
                    moved = await self._saw(task) or moved
        except TaskNotFoundError:
            if not heard:  # not the user's task (or none): refused before anything was sent
                await self._stop()
            # The agent answered with the task, then found no live stream for
            # it (the a2a-sdk does so once a task stops to ask, or after the
            # agent restarted): asked with GetTask from now on.
            self._streams = False
        except A2AError as exc:
            if isinstance(exc, UnsupportedOperationError):
                raise
            logger.info("run %s: subscription to task %s: %s", self.info["id"], self.task_id, exc)
        return moved

    async def _watch(self, agent: AgentOperations, admission: Admission) -> None:
        """The gateway's own watch on the task, tried once: from then on the
        agent's pushes are recorded (and wake the run) as they come."""
        self._watch_tried = True
        if not isinstance(agent, PushConfigs):
            return
        self.watched = True
        try:
            await agent.watch_task(admission, self.task_id, self.watch_id)
        except A2AError as exc:  # refused (or the agent down): looked at with GetTask
            logger.info("run %s: no watch on task %s: %s", self.info["id"], self.task_id, exc)
            self.watched = False
            await self._forget_watch()

    def _watched_delay(self) -> float:
        """Until the next look at a watched task: a push lost is found at
        the latest just before the wait's end, not after it."""
        if self.deadline is None:
            return WATCHED_LOOK_SECONDS
        left = self.deadline - time.time() - LOOK_BEFORE_END_SECONDS
        return min(WATCHED_LOOK_SECONDS, max(MOVED_SECONDS, left))

    async def _forget_watch(self) -> None:
        """The gateway's own row of the watch removed, whatever the run may
        still do at the agent: its relay takes no more pushes."""
        owner = Owner(self.info["owner_subject"], self.info["owner_issuer"])
        await self.rt.front_door().push.delete(self.agent, owner, self.task_id, self.watch_id)

    async def unwatch(self) -> None:
        """The watch removed, briefly: here first (no decision needed for
        the gateway's own row), then at the agent, as a courtesy, as the
        run's user (a refused decision leaves only the agent's copy, which
        points at a relay that no longer exists). The wait is over."""
        try:
            async with asyncio.timeout(UNWATCH_SECONDS):
                await self._forget_watch()
                async with self.rt.look_at(self.info, self.agent, EVENT) as (caller, grant):
                    agent = self.rt.handler_for(grant.card)
                    owner = Owner(caller.subject, caller.issuer, caller)
                    if isinstance(agent, PushConfigs):
                        await agent.unwatch_task(
                            Admission(grant, owner, frozenset()), self.task_id, self.watch_id
                        )
        except Exception as exc:
            logger.info("run %s: watch on task %s left: %r", self.info["id"], self.task_id, exc)

    async def _saw(self, task: Task) -> bool:
        """Whether ``task`` is in a state not seen before. An end, or a state
        the wait is for, wakes the run (the handler recorded it, and that
        record wakes it too, when this replica knows the flow waits); an end
        stops the following."""
        state = task.status.state
        if state in TERMINAL:
            await self._stop()
        moved, self._seen = state != self._seen, state
        if moved and TaskState.Name(state) in self.wanted:
            await self.wake()
        return moved

    async def _admitted(self, held: contextlib.AsyncExitStack) -> Grant | None:
        """The run's call to the agent, decided on its grant now and held
        open in ``held``, as the reconciler decides each look at a task
        (`gateway.agents.reconcile`): the policy in force, a token for this
        agent only; None for an agent the gateway runs (it records that task
        itself). A rate limit of the user's is waited out (`RateLimited`);
        any other refusal ends it."""
        try:
            _, grant = await held.enter_async_context(self.rt.look_at(self.info, self.agent, EVENT))
        except RateLimited:
            raise
        except (GrantUnusable, DelegationDenied, AgentNotFound):
            await self._stop()
        return None if gateway_run_kind(grant.card) is not None else grant

    async def _stop(self) -> NoReturn:
        """The run looks now (its look says why), and following ends."""
        await self.wake()
        raise Stop


@contextlib.asynccontextmanager
async def following(
    rt: FlowRuntime,
    info: Mapping[str, Any],
    agent: str,
    task_id: str,
    topic: str,
    wanted: frozenset[str],
    deadline: float | None = None,
) -> AsyncIterator[None]:
    """The task followed while the block runs (the wait's loop, until
    ``deadline``); a watch it put on the task removed after."""

    async def wake() -> None:
        await mailbox.send(info["id"], {"follower": "look"}, topic)

    follower = TaskFollower(rt, dict(info), agent, task_id, wake, wanted, topic, deadline)
    # A context of its own: nothing it does is an operation of the run's workflow.
    context = contextvars.Context()
    task = asyncio.create_task(follower.run(), context=context)
    try:
        yield
    finally:
        task.cancel()
        # Waited for without taking a cancellation of our own for its.
        await asyncio.wait([task])
        if follower.watched:  # outside the follower: its cancel does not cut this short
            await asyncio.wait([asyncio.create_task(follower.unwatch(), context=context)])

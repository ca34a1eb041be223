"""A step's message to an agent, and the agent's task followed until it ends
or asks (`gateway.flows.calls` decides and records; this talks to the task).

Through the agent's own operations (`gateway.agents.exchange`: an A2A
agent's, a gateway-run agent's, another flow's), on the step's admission --
the same ones the A2A door runs for any caller's message: streamed when the
agent streams (the task id recorded from the first event, before any
waiting), else sent with ``returnImmediately`` and the task polled with
`GetTask`, backing off. The outcome is a step's: completed
(the artifacts' data, else the text; the usage the agent reported), asking
(input- or auth-required: the run's user is asked, `gateway.flows.questions`),
or `StepFailed`.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from a2a.types import Message, SendMessageRequest, Task, TaskState
from a2a.utils.errors import A2AError
from google.protobuf.json_format import MessageToDict

from adapters.usage import from_metadata
from gateway.agents.admission import Admission
from gateway.agents.exchange import AgentMessage, AgentOperations
from gateway.delegation.runs import TERMINAL
from gateway.flows.deep_approvals import (
    LOOK_SECONDS,
    Onwards,
    hear_held,
    held_deeper,
    held_onwards_soon,
    wait_for_decision,
)
from gateway.flows.messages import apply_event, outcome_of_parts, task_id_of, text_of
from gateway.flows.outcomes import asking
from gateway.flows.runtime import FlowRuntime
from gateway.flows.step_errors import StepFailed, users_own

logger = logging.getLogger(__name__)


ASKS = {
    TaskState.TASK_STATE_INPUT_REQUIRED: "input_required",
    TaskState.TASK_STATE_AUTH_REQUIRED: "auth_required",
}
WAITING = frozenset(ASKS)


class AgentTask:
    """One step's exchange with ``agent`` (``target``: as the step names it),
    through its ``operations`` on ``admission``; ``remember`` writes the
    step's record (its ``upstream_task_id`` as soon as it is known)."""

    def __init__(
        self,
        rt: FlowRuntime,
        run_id: str,
        agent: str,
        target: str,
        operations: AgentOperations,
        admission: Admission,
        remember: Callable[..., Awaitable[None]],
        answered: str | None = None,
        held: Callable[[dict[str, Any] | None], Awaitable[None]] | None = None,
        holding: str | None = None,
        clock: Callable[[bool], None] | None = None,
        onwards: Onwards | None = None,
    ) -> None:
        # ``onwards``: how to find the approval that a call the agent made
        # onwards through the gateway for this step waits at (the step's
        # ``txn``, which the agent's token carried on), and how to show it on
        # the run -- as a nested flow's is -- while the exchange goes on.
        self.onwards = onwards
        # Re-attached while it showed one (an agent of its own: ``holding`` is
        # an onward approval): a look finding it decided says so, and the clock goes on.
        self._onward: str | None = holding if onwards is not None else None
        self._looking = False
        # ``clock``: told when a human starts (True) and stops deciding an
        # approval inside the task -- the step's timeout stands still meanwhile.
        self.clock = clock
        # ``held``: told of an approval the task waits at inside it (a nested
        # flow's checkpoint, `deep_approvals`), and once it goes on (None);
        # ``holding``: the approval the step's record showed (a re-attach).
        self.held = held
        self._holding: str | None = holding if held is not None else None
        self._woken: str | None = None  # the approval whose decision woke us
        # ``answered``: the status (`status_key`) that asked what is being
        # answered -- seen again, the agent has not taken the answer yet.
        self.answered = answered
        # Seen working (or anything but asking) since: whatever asks next is new.
        self._left = False
        self.rt = rt
        self.run_id = run_id
        self.agent = agent
        self.target = target
        self.operations = operations
        self.admission = admission
        self.remember = remember

    async def send(self, message: AgentMessage, streams: bool) -> dict[str, Any]:
        """Send ``message``: on a stream when ``streams``, else answered at once
        (``returnImmediately``) and its task followed."""
        request = message.request(return_immediately=not streams)
        async with self.looking_onwards():
            with users_own(self.agent):  # an agent that takes its users' own tokens
                try:
                    if streams:
                        return await self._stream(request)
                    answer = await self.operations.message(self.admission, request)
                except A2AError as exc:
                    raise StepFailed(f"{self.agent}: {exc}") from None
            if isinstance(answer, Message):
                return outcome_of_parts(list(answer.parts))
            await self.remember(upstream_task_id=answer.id)
            return await self.follow(answer.id, answer)

    @contextlib.asynccontextmanager
    async def looking_onwards(self) -> AsyncIterator[None]:
        """While the block runs, an approval that a call the agent made
        onwards for this step waits at is shown on the run, and the step's
        clock stands still while a human decides (`deep_approvals`)."""
        onwards = self.onwards
        if onwards is None or self._looking:  # none, or looked for already (a follow in a send)
            yield
            return
        self._looking = True
        looking: asyncio.Task[None] | None = None

        def start() -> None:
            nonlocal looking
            if looking is None:
                looking = asyncio.create_task(self._look_onwards(onwards))

        # Nothing to look for before a call onwards is held: the looking
        # starts when one is held here, else after a while (one held on
        # another replica) -- a step that ends sooner costs nothing; at once
        # when re-attached while it showed one (decided while the gateway was down?).
        later = asyncio.get_running_loop().call_later(LOOK_SECONDS, start)
        unheard = hear_held(onwards.txn, start)
        if self._onward is not None:
            start()
        try:
            yield
        finally:
            later.cancel()
            unheard()
            if looking is not None:
                looking.cancel()
                await asyncio.wait([looking])
            self._looking = False
            if self._onward is not None:
                self._onward = None  # the exchange is over: the run does not stay shown waiting
                with contextlib.suppress(Exception):
                    await asyncio.shield(onwards.show(None))
                if self.clock is not None:
                    self.clock(False)

    async def _look_onwards(self, onwards: Onwards) -> None:
        while True:
            try:
                found = await onwards.find()
            except Exception as exc:  # an outage: looked again later
                logger.info("run %s: onward approvals of %s: %r", self.run_id, onwards.txn, exc)
                found = None
            approval = found["approval"] if found is not None else None
            if approval != self._onward:
                try:
                    await onwards.show(found)
                except Exception as exc:  # an outage: shown at the next look
                    logger.info("run %s: approval %s not shown: %r", self.run_id, approval, exc)
                else:
                    self._onward = approval
                    if self.clock is not None:
                        self.clock(approval is not None)
            if approval is not None:
                await wait_for_decision(approval, LOOK_SECONDS)
            else:
                await held_onwards_soon(onwards.txn, LOOK_SECONDS)

    async def get(self, task_id: str) -> Task:
        try:
            task = await self.operations.task(self.admission, task_id)
        except A2AError as exc:
            raise StepFailed(f"{self.target}: task {task_id}: {exc}") from None
        if task is None:
            raise StepFailed(f"{self.target}: task {task_id} is gone", final=True)
        return task

    async def _stream(self, request: SendMessageRequest) -> dict[str, Any]:
        """An agent that streams: one `SendStreamingMessage`, the task id recorded
        from its first event (before any waiting, as for a polled call), the
        task followed to its end on the stream -- no `GetTask` polling. A stream
        that ends or breaks before the task does is followed by polling.

        An answer's stream may open with the task as it was, still asking:
        only a status the stream brings after that counts."""
        task: Task | None = None
        try:
            events = self.operations.stream_message(self.admission, request)
            async with contextlib.aclosing(events):
                async for event in events:
                    if isinstance(event, Message):
                        return outcome_of_parts(list(event.parts))
                    if task is None:
                        task = Task(
                            id=task_id_of(event), context_id=getattr(event, "context_id", "")
                        )
                        await self.remember(upstream_task_id=task.id)
                    apply_event(task, event)
                    await self._watch(task)
                    if self._moved_on(task):
                        break
        except A2AError as exc:
            if task is None:
                raise StepFailed(f"{self.target}: {exc}") from None
            logger.info("run %s: stream of task %s broke (%s); polling", self.run_id, task.id, exc)
        if task is None:
            raise StepFailed(f"{self.target} ended its stream without a task")
        if self._moved_on(task):
            return self.ended(task)
        return await self.follow(task.id)

    async def _watch(self, task: Task) -> None:
        """Tell ``held`` of an approval the task waits at inside it, once
        each, and once it goes on."""
        deeper = held_deeper(task) if self.held is not None else None
        approval = deeper["approval"] if deeper is not None else None
        if approval == self._holding or self.held is None:
            return
        self._holding = approval
        await self.held(deeper)
        if self.clock is not None:
            self.clock(approval is not None)

    def _moved_on(self, task: Task) -> bool:
        """Ended, or asking -- something other than the question answered:
        another status (`status_key`), or any once the task was seen doing
        something else since. Waiting at an approval inside it (a nested
        flow's checkpoint) is not asking: the step waits on."""
        state = task.status.state
        if state in TERMINAL:
            return True
        if state not in WAITING or (self.held is not None and held_deeper(task) is not None):
            self._left = True
            return False
        return self._left or self.answered is None or status_key(task) != self.answered

    async def follow(self, task_id: str, task: Task | None = None) -> dict[str, Any]:
        """Wait for the agent's task to end (or ask): GetTask, backing off."""
        try:
            async with self.looking_onwards():
                return await self._follow(task_id, task)
        except BaseException:
            # Stopped while it showed an approval inside (a timeout, a cancel,
            # a failure): the run does not stay shown waiting for it.
            if self._holding is not None and self.held is not None:
                self._holding = None
                with contextlib.suppress(Exception):
                    await asyncio.shield(self.held(None))
            raise

    async def _follow(self, task_id: str, task: Task | None = None) -> dict[str, Any]:
        delay = self.rt.settings.poll_min_seconds
        while task is None or not self._moved_on(task):
            if task is not None:
                await self._watch(task)
                if self._holding is not None and self._holding != self._woken:
                    # A human decides: woken by the decision here, else a look
                    # now and then; once decided, the inner run takes a moment
                    # to go on, looked at as any task is.
                    if await wait_for_decision(self._holding, LOOK_SECONDS):
                        self._woken = self._holding
                else:
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, self.rt.settings.poll_max_seconds)
            task = await self.get(task_id)
        await self._watch(task)
        return self.ended(task)

    def ended(self, task: Task) -> dict[str, Any]:
        """The outcome of a task in a final (or waiting) state."""
        state = task.status.state
        said = text_of(list(task.status.message.parts))
        if state == TaskState.TASK_STATE_COMPLETED:
            parts = [p for artifact in task.artifacts for p in artifact.parts]
            if not parts:
                parts = list(task.status.message.parts)
            outcome = outcome_of_parts(parts)
            usage = from_metadata(MessageToDict(task.metadata))
            if usage is not None:
                outcome["usage"] = usage.as_dict()
            return outcome
        if state in WAITING:
            # The run's user is asked (`gateway.flows.questions`); the task's id
            # is on the step's record, where the answer goes.
            asked = outcome_of_parts(list(task.status.message.parts))["output"]
            data = asked if isinstance(asked, dict) else None
            return asking(said, data, self.target, ASKS[state], status_key(task))
        raise StepFailed(f"{self.target}: task {TaskState.Name(state)}: {said}".rstrip(": "))


def status_key(task: Task) -> str:
    """Which status of the task this is: its message's id, else its time and
    words (an agent asking twice within one second, alike, without message
    ids is seen as one question until it is seen doing something between)."""
    status = task.status
    if status.message.message_id:
        return f"message:{status.message.message_id}"
    said = hashlib.sha256(status.message.SerializeToString(deterministic=True)).hexdigest()[:16]
    at = status.timestamp.ToJsonString() if status.HasField("timestamp") else "-"
    return f"at:{at}:{said}"

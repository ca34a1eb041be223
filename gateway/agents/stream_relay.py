"""One A2A stream relayed from an agent to its caller, through the delegation
core (`Delegate.stream`: the breaker, the duration cap, the one record).

On the way each event is taken in as the caller's: a task recorded for its
owner, an update checked against the task it names (`AgentCalls.observe`).
Once the stream has written its task's record, the task's later artifact
chunks and the status updates it goes on from are held and written together
(`gateway.delegation.held_updates`; a state the task ends or waits in is
written, with what was held, before it is passed on), flushed before any
other event so that the records see the events in their order, and flushed
once more when the stream ends however it ends. A stream that ends while its task still
runs has the task reconciled (`AgentCalls.lost_contact`).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from typing import Any, Protocol

import anyio
from a2a.client.transports.base import ClientTransport
from a2a.server.events.event_queue import Event
from a2a.types import (
    Message,
    StreamResponse,
    Task,
    TaskArtifactUpdateEvent,
    TaskStatusUpdateEvent,
)
from a2a.utils.errors import A2AError, InvalidRequestError

from adapters.a2a import UpstreamEndpoint
from adapters.operations import Operation
from gateway.agents.admission import Admission, StreamLimits
from gateway.agents.consents import CallToken
from gateway.agents.stream_records import Followed
from gateway.agents.task_events import event_of
from gateway.agents.upstream_errors import outcome_of
from gateway.connections.errors import UserCredentialUnavailable
from gateway.delegation.delegate import Delegate, Explained, Streaming
from gateway.delegation.runs import TERMINAL
from gateway.delegation.tasks import TaskRecords
from gateway.delegation.upstream_failures import UpstreamTimeoutError

logger = logging.getLogger(__name__)

OpenStream = Callable[[ClientTransport, Any], AsyncIterator[StreamResponse]]


class AgentCalls(Protocol):
    """What a relay needs of the agent's calls (`gateway.agents.calls.AgentCalls`)."""

    @property
    def tasks(self) -> TaskRecords: ...
    @property
    def stream_limits(self) -> StreamLimits: ...
    @property
    def delegate(self) -> Delegate: ...
    async def client(
        self, admission: Admission, operation: str
    ) -> tuple[ClientTransport, UpstreamEndpoint]: ...
    def call_token(self, admission: Admission) -> CallToken: ...
    def context(
        self, admission: Admission, token: CallToken, *, streaming: bool = False
    ) -> Any: ...
    def explain(self, admission: Admission) -> Callable[[BaseException], Explained]: ...
    async def observe(self, admission: Admission, event: Event) -> None: ...
    async def lost_contact(self, admission: Admission, task_id: str) -> None: ...


class RelayedStream:
    """The parts of one relayed stream the core asks for (`Streaming`)."""

    def __init__(
        self, calls: AgentCalls, admission: Admission, transport: ClientTransport, token: CallToken
    ) -> None:
        self.calls = calls
        self.admission = admission
        self.transport = transport
        self.token = token
        self.followed = Followed()  # the task the stream is about, and its last state
        # Tasks whose record this stream wrote (a snapshot or a status: the
        # write checked they are the caller's): their later updates are held.
        self.recorded: set[str] = set()
        # Tasks this stream wrote an artifact update of: their next ones are held.
        self.batched: set[str] = set()
        self.limit = calls.stream_limits.max_seconds

    async def events(self, open_stream: OpenStream) -> AsyncIterator[Event]:
        # Closed with the relay: that closes the upstream connection.
        context = self.calls.context(self.admission, self.token, streaming=True)
        stream = open_stream(self.transport, context)
        try:
            async with contextlib.aclosing(stream):  # type: ignore[type-var]
                async for item in stream:
                    yield event_of(item)
        except Exception as exc:
            self.token.attempted(exc)
            raise

    async def observe(self, event: Event) -> None:
        self.followed.see(event)
        agent_id = self.admission.agent_id
        held = self.calls.tasks.held
        if self._holds(event):
            owner = self.admission.owner
            await held.hold(agent_id, (owner.subject, owner.issuer), event)
            return
        for task_id in self.recorded | self.batched:  # the record sees the events in order
            await held.flush(agent_id, task_id)
        await self.calls.observe(self.admission, event)
        if isinstance(event, Task):
            self.recorded.add(event.id)
        elif isinstance(event, TaskStatusUpdateEvent):
            self.recorded.add(event.task_id)
        elif isinstance(event, TaskArtifactUpdateEvent):
            self.batched.add(event.task_id)

    def _holds(self, event: Event) -> bool:
        """Whether the event is an update to hold (`HeldUpdates.hold`): one of
        a task whose record this stream wrote (an artifact chunk also of one
        it wrote a chunk of: dropped alike while the task is not recorded)."""
        if isinstance(event, TaskStatusUpdateEvent):
            return event.task_id in self.recorded
        if isinstance(event, TaskArtifactUpdateEvent):
            return event.task_id in self.recorded or event.task_id in self.batched
        return False

    def last(self, event: Event) -> bool:
        """The stream's last word: a message, or its task's end."""
        return isinstance(event, Message) or self.followed.state in TERMINAL

    async def closed(self, lost: bool) -> None:
        if lost and self.followed.running:
            await self.calls.lost_contact(self.admission, self.followed.task_id)

    def overran(self) -> Explained:
        error = UpstreamTimeoutError(
            f"the stream from agent {self.admission.agent_id} passed the {self.limit:g} s limit"
        )
        return Explained(error, outcome_of(error), str(error))

    def streaming(self, operation: str, open_stream: OpenStream) -> Streaming[Event]:
        admission = self.admission
        return Streaming(
            upstream=admission.agent_id,
            open=lambda: self.events(open_stream),
            explain=self.calls.explain(admission),
            max_seconds=self.limit,
            observe=self.observe,
            last=self.last,
            overran=self.overran,
            closed=self.closed,
            before=self.token.before,
            went_with=self.token.went_with,
            operation=Operation.agent(admission.agent_id, admission.grant.card, operation),
        )

    async def flush_held(self) -> None:
        for task_id in self.recorded | self.batched:
            try:
                await self.calls.tasks.held.flush(self.admission.agent_id, task_id)
            except Exception:  # the stream's own outcome is the caller's
                logger.exception(
                    "updates of task %s of %s not written",
                    task_id,
                    self.admission.agent_id,
                )


async def relay(
    calls: AgentCalls, admission: Admission, operation: str, open_stream: OpenStream
) -> AsyncGenerator[Event]:
    """Pass the agent's events through as they arrive, each taken in first."""
    transport, _ = await calls.client(admission, operation)
    relayed_stream = RelayedStream(calls, admission, transport, calls.call_token(admission))
    streaming = relayed_stream.streaming(operation, open_stream)
    started = False
    try:
        async with relayed_stream.token.refusals():
            relayed = calls.delegate.stream(admission.grant, f"a2a.{operation}", streaming)
            async with contextlib.aclosing(relayed):  # its record written as it closes
                async for event in relayed:
                    started = True
                    yield event
    except UserCredentialUnavailable as missing:
        if operation == "SendStreamingMessage" and not started:
            raise  # nothing was done: held for the user's consent, or said by the door
        # Under way (or another operation): an A2A error with the link, never
        # a refusal that would have the message sent again.
        raise unavailable(missing) from None
    finally:
        with anyio.CancelScope(shield=True):  # a caller gone loses no chunk taken
            await relayed_stream.flush_held()


def unavailable(missing: UserCredentialUnavailable) -> A2AError:
    """The user's own credential at the agent is missing, for an operation
    that is not a new message (a task's state, a cancellation, a stream
    under way): the caller is told, with the connect link where there is one."""
    return InvalidRequestError(str(missing))

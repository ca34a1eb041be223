"""Running one gateway-run vendor agent's task (`gateway.delegation.task_runner.Execute`).

`VendorExecution` calls the adapter through the delegation core (`Sending`
or `Streaming`), with the agent's API key -- and, for an agent registered
with `user_oauth`, the calling user's own token from their connection, got
in the core's `before` step (`CallToken`) -- and turns the answer into the
task's artifact, or its failure into a failed task saying why (with the
connect link when the vendor refused the user's token).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Iterator
from typing import TYPE_CHECKING, TypeVar

from a2a.server.events.event_queue import Event
from a2a.types import (
    Artifact,
    Part,
    Task,
    TaskArtifactUpdateEvent,
    TaskState,
    TaskStatusUpdateEvent,
)
from google.protobuf.json_format import ParseDict
from google.protobuf.struct_pb2 import Value

from adapters.base import Credentials, Delta, Reply
from adapters.errors import AdapterError, UpstreamFailed
from adapters.usage import METADATA_KEY, Usage
from gateway.agents.admission import FrontDoorParts
from gateway.agents.consents import CallToken
from gateway.connections.errors import ConnectionRequired, UserCredentialUnavailable
from gateway.delegation.call import Call
from gateway.delegation.delegate import Sending, Streaming
from gateway.delegation.pipeline import DelegationDenied, Grant
from gateway.delegation.run_rows import RunLost
from gateway.delegation.runs import RunSpec, status_message
from gateway.delegation.vendor_agents import (
    CredentialUnavailable,
    VendorCall,
    classify_adapter_failure,
    explain_adapter_failure,
    overran,
)
from gateway.storage.outages import outage_of
from policies.tokens import TokenInvalid

if TYPE_CHECKING:
    from gateway.agents.vendor import GatewayRun

T = TypeVar("T")


class VendorExecution:
    """Runs one gateway-run task: call the adapter, turn its answer into A2A."""

    def __init__(self, parts: Callable[[], FrontDoorParts], run: Callable[[], GatewayRun]) -> None:
        self._parts = parts
        self._run = run

    async def __call__(self, spec: RunSpec, grant: Grant | None) -> AsyncGenerator[Event]:
        parts = self._parts()
        task = await _task_of(parts, spec)
        working = TaskStatusUpdateEvent(task_id=task.id, context_id=task.context_id)
        working.status.state = TaskState.TASK_STATE_WORKING
        yield working
        # A run again after an interruption decides its call anew, held open here.
        async with contextlib.AsyncExitStack() as held:
            try:
                grant, call, token = await self._ready(parts, spec, grant, held)
            except (DelegationDenied, TokenInvalid, CredentialUnavailable, AdapterError) as exc:
                yield _failed(task, f"the call could not be made: {exc}")
                return
            answering = _Answering(parts, spec, task, call, grant, token)
            try:
                if spec.streaming:
                    async with contextlib.aclosing(answering.stream()) as chunks:
                        async for chunk in chunks:
                            yield chunk
                else:
                    await answering.send()
            except UserCredentialUnavailable as missing:  # recorded by the core; nothing sent
                yield _failed(task, f"{missing}; then send the request again")
                return
            except AdapterError as exc:  # recorded by the core
                needed = await _refusal(token, exc)
                said = f"{needed}; then send the request again" if needed else str(exc)
                yield _failed(task, said)
                return
        for event in answering.completed():
            yield event

    async def _ready(
        self,
        parts: FrontDoorParts,
        spec: RunSpec,
        grant: Grant | None,
        held: contextlib.AsyncExitStack,
    ) -> tuple[Grant, VendorCall, CallToken]:
        """The grant, the vendor's call and the token it goes with; a run
        again after an interruption decides and mints anew, its call held
        open in ``held`` (`Delegate.open`: it ends with one record)."""
        if grant is None:
            again = Call(
                spec.caller,
                spec.agent_id,
                event="a2a.retry",
                trace_id=spec.trace_id,
                action=spec.turn.skill,
                message=True,
            )
            grant = await held.enter_async_context(parts.delegate.open(again))
            await self._run().runner.sending(spec, grant, "a2a.run")
        else:  # the first send: its mark was stored with the run; still held?
            runner = self._run().runner
            if not await _outlasting(lambda: runner.holds(spec)):
                raise RunLost(spec.task_id)
        # Read through an outage as `holds` is: the run is under way (its
        # "working" is out) and a database away for a while must not fail it.
        call = await _outlasting(lambda: self._run().vendors.call_for(spec.agent_id))
        if call is None:
            raise AdapterError(f"agent {spec.agent_id} is no longer registered")
        return grant, call, await _outlasting(lambda: _call_token(parts, call, grant))


async def _task_of(parts: FrontDoorParts, spec: RunSpec) -> Task:
    """The task's record as stored (its history is needed), or a new one."""
    snapshot = await _outlasting(lambda: parts.tasks.get(spec.agent_id, spec.owner, spec.task_id))
    return snapshot or Task(id=spec.task_id, context_id=spec.context_id)


async def _outlasting(read: Callable[[], Awaitable[T]]) -> T:
    """``read()``, tried again through a database outage until it answers:
    what a run needs before it sends anything."""
    delay = 0.2
    while True:
        try:
            return await read()
        except Exception as exc:
            if outage_of(exc) is None:
                raise
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)


class _Answering:
    """One call of the vendor's adapter through the core (`Sending` or
    `Streaming`), and the task's artifact made of its answer."""

    def __init__(
        self,
        parts: FrontDoorParts,
        spec: RunSpec,
        task: Task,
        call: VendorCall,
        grant: Grant,
        token: CallToken,
    ) -> None:
        self._parts, self._spec, self._task = parts, spec, task
        self._call, self._grant, self._token = call, grant, token
        self._timeout = grant.agent.timeout_seconds or parts.default_timeout_seconds
        self._artifact_id = str(uuid.uuid4())
        self._name = spec.turn.skill or "reply"
        self._reply: Reply | None = None
        self._streamed = False
        self._rules = parts.resilience.handoff(
            parts.delegations.policy.current, spec.agent_id, spec.turn.skill
        )

    def _credentials(self) -> Credentials:
        # Read at each attempt: a `user_oauth` agent's token is the user's
        # own, got by the core's `before` step (`CallToken.check`).
        own = self._token.token if self._token.upstream is not None else None
        return self._call.credentials(self._grant.token.token, own)

    async def stream(self) -> AsyncGenerator[TaskArtifactUpdateEvent]:
        """The answer as it comes: each text delta one chunk of the artifact."""
        spec, call = self._spec, self._call

        async def items() -> AsyncIterator[Delta | Reply]:
            answered = False
            async for item in call.adapter.stream(
                spec.turn, self._credentials(), timeout_seconds=self._timeout
            ):
                answered = answered or isinstance(item, Reply)
                yield item
            if not answered:
                raise AdapterError(f"agent {spec.agent_id} ended without an answer")

        streaming: Streaming[Delta | Reply] = Streaming(
            upstream=spec.agent_id,
            open=items,
            explain=explain_adapter_failure,
            max_seconds=self._parts.stream_limits.max_seconds,
            overran=functools.partial(overran, spec.agent_id),
            recorded=lambda: ("ok", _usage_said(self._reply.usage if self._reply else None) or ""),
            before=self._token.before,
            went_with=self._token.went_with,
        )
        # Closed before the run's call is: the stream's record is the call's one.
        stream = self._parts.delegate.stream(self._grant, "a2a.run", streaming)
        async with contextlib.aclosing(stream):
            async for item in stream:
                if isinstance(item, Delta):
                    parts = [Part(text=item.text)]
                    yield _chunk(self._task, self._artifact_id, self._name, parts, self._streamed)
                    self._streamed = True
                else:
                    self._reply = item

    async def send(self) -> None:
        """The answer in one piece."""
        spec, call = self._spec, self._call
        sending: Sending[Reply] = Sending(
            upstream=spec.agent_id,
            attempt=lambda: call.adapter.call(
                spec.turn, self._credentials(), timeout_seconds=self._timeout
            ),
            explain=explain_adapter_failure,
            idempotent=bool(self._rules.idempotent),
            recorded=lambda answer: ("ok", _usage_said(answer.usage) or ""),
            classify=classify_adapter_failure,
            before=self._token.before,
            went_with=self._token.went_with,
        )
        self._reply = await self._parts.delegate.send(self._grant, "a2a.run", sending)

    def completed(self) -> Iterator[Event]:
        """The artifact's last chunk (streaming), then the completed task."""
        reply, task = self._reply, self._task
        assert reply is not None
        if reply.usage is not None:
            # Where a flow step (or any caller) reads what the answer cost.
            task.metadata.update({METADATA_KEY: reply.usage.as_dict()})
        artifact = Artifact(
            artifact_id=self._artifact_id, name=self._name, parts=reply_parts(reply)
        )
        if self._spec.streaming:
            streamed = self._streamed
            rest = [p for p in artifact.parts if p.HasField("data")] if streamed else artifact.parts
            event = _chunk(task, self._artifact_id, self._name, list(rest), streamed)
            event.last_chunk = True
            yield event
        task.artifacts.append(artifact)
        task.status.Clear()
        task.status.state = TaskState.TASK_STATE_COMPLETED
        yield task


async def _call_token(parts: FrontDoorParts, call: VendorCall, grant: Grant) -> CallToken:
    """The token the call goes with: for an agent registered with
    `user_oauth`, the caller's own from their connection -- and none at all
    where the gateway cannot get one (no connected accounts here): the
    gateway's own key never stands in for the user's."""
    if call.config.user_oauth is None:
        return CallToken(None, grant)
    consents = parts.consents
    upstream = None
    if consents is not None:
        upstream = await consents.upstream_of(grant.agent.id, grant.card)
    if consents is None or consents.connections is None or upstream is None:
        raise AdapterError(
            f"agent {grant.agent.id} takes each user's own account, "
            "and connected accounts are not available on this gateway"
        )
    return CallToken(consents, grant, upstream=upstream)


async def _refusal(token: CallToken, failure: AdapterError) -> ConnectionRequired | None:
    """The vendor refused the user's own token (401, or 403
    ``insufficient_scope``): what the user must do about it."""
    if token.upstream is None or not isinstance(failure, UpstreamFailed):
        return None
    # A 401 is the user's token refused only when it says so the bearer way
    # (RFC 6750 §3): one for another credential (an API key sent alongside)
    # must not end every user's connection.
    bearer = (failure.challenge or "").lower().startswith("bearer")
    if failure.status == 403 or (failure.status == 401 and bearer):
        token.answered(failure.status, failure.challenge)
    return await token.refused()


def _usage_said(usage: Usage | None) -> str | None:
    if usage is None:
        return None
    return f"usage: {usage.input_tokens} in, {usage.output_tokens} out, {usage.total_tokens} tokens"


def reply_parts(reply: Reply) -> list[Part]:
    parts: list[Part] = []
    if reply.text is not None:
        parts.append(Part(text=reply.text))
    if reply.data is not None:
        value = Value()
        ParseDict(reply.data, value)
        parts.append(Part(data=value, media_type="application/json"))
    return parts or [Part(text="")]


def _chunk(
    task: Task, artifact_id: str, name: str, parts: list[Part], append: bool
) -> TaskArtifactUpdateEvent:
    event = TaskArtifactUpdateEvent(task_id=task.id, context_id=task.context_id, append=append)
    event.artifact.artifact_id = artifact_id
    event.artifact.name = name
    event.artifact.parts.extend(parts)
    return event


def _failed(task: Task, reason: str) -> Task:
    task.status.Clear()
    task.status.state = TaskState.TASK_STATE_FAILED
    task.status.message.CopyFrom(status_message(task.id, task.context_id, reason))
    return task

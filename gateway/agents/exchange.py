"""An agent's operations as plain calls, for callers inside the gateway (a
flow's step): no SDK request handler, no call context, no request built by
the caller.

Each kind of agent -- an A2A agent (`gateway.agents.handler`), a gateway-run
vendor agent (`gateway.agents.vendor`), a flow (`gateway.flows.agent`) --
implements `AgentOperations` on an `Admission` the caller's decision made
(`Delegations.admit` of a message `Call`); the SDK's `on_*` methods are each one's A2A
door, which decodes the request and its context and calls the same
operation. The message a caller hands over is plain data (`AgentMessage`),
built into the A2A message here, at the edge.
"""

from __future__ import annotations

import contextlib
import functools
from abc import ABC, abstractmethod
from collections.abc import AsyncGenerator
from dataclasses import dataclass
from typing import Any

from a2a.server.context import ServerCallContext
from a2a.server.events.event_queue import Event
from a2a.server.request_handlers.request_handler import RequestHandler, validate_request_params
from a2a.types import Message, Part, Role, SendMessageConfiguration, SendMessageRequest, Task
from google.protobuf.struct_pb2 import Struct, Value

from gateway.agents.admission import Admission, admission_of
from gateway.http.json_body import check_value


class AgentOperations(ABC):
    """What a caller inside the gateway does with an agent it was admitted to."""

    @abstractmethod
    async def message(self, admission: Admission, params: SendMessageRequest) -> Task | Message:
        """`SendMessage`, as the door's `on_message_send` does it."""

    @abstractmethod
    def stream_message(
        self, admission: Admission, params: SendMessageRequest
    ) -> AsyncGenerator[Event]:
        """`SendStreamingMessage`, as the door's `on_message_send_stream` does it."""

    @abstractmethod
    async def task(self, admission: Admission, task_id: str) -> Task | None:
        """`GetTask` of one of the caller's tasks."""

    @abstractmethod
    async def cancel(self, admission: Admission, task_id: str) -> Task | None:
        """`CancelTask` of one of the caller's tasks."""

    @abstractmethod
    def subscribe(self, admission: Admission, task_id: str) -> AsyncGenerator[Event]:
        """`SubscribeToTask` of one of the caller's tasks."""


class OperationsHandler(RequestHandler, AgentOperations, ABC):
    """An agent kind's A2A door (the SDK's handler) and its plain operations:
    the door's message operations read the admission from the request's
    context and call the same plain operation a flow's step calls."""

    @validate_request_params
    async def on_message_send(
        self, params: SendMessageRequest, context: ServerCallContext
    ) -> Task | Message:
        return await self.message(admission_of(context), params)

    @validate_request_params
    async def on_message_send_stream(
        self, params: SendMessageRequest, context: ServerCallContext
    ) -> AsyncGenerator[Event]:
        events = self.stream_message(admission_of(context), params)
        async with contextlib.aclosing(events):
            async for event in events:
                yield event


class Unsendable(ValueError):
    """A message that cannot be built: nothing is sent."""


@dataclass(frozen=True)
class AgentMessage:
    """One message to an agent as plain data: ``arguments`` (a data part) and
    ``text``, for ``skill``; ``task_id`` and ``context_id``: the task and
    context it goes on with, if it does."""

    message_id: str
    arguments: dict[str, Any] | None
    text: str | None
    skill: str | None = None
    task_id: str = ""
    context_id: str = ""

    @functools.cached_property
    def built(self) -> Message:
        """The A2A message, or `Unsendable` saying why it cannot be.

        A caller's data may be computed (JMESPath's ``sum`` of two large
        numbers is infinite) or copied from an agent's answer, so it may hold
        what no door takes: a number JSON has no spelling for, which
        protobuf's `Value` holds and its JSON encoder then refuses mid-send
        (issue 57). It is held to the doors' rules (`gateway.http.json_body`)
        here, before anything is decided or sent. The depth is not: a flow
        step may wrap its input deeper than a body's limit, and always could."""
        try:
            if self.arguments is not None:
                check_value(self.arguments, max_depth=None)
            message = Message(
                message_id=self.message_id,
                role=Role.ROLE_USER,
                parts=message_parts(self.arguments, self.text),
                task_id=self.task_id,
                context_id=self.context_id,
            )
            if self.skill:
                message.metadata.update({"skill": self.skill})
        # Building it calls no one: whatever the encoder raises, it cannot be sent.
        except Exception as exc:
            raise Unsendable(f"its message cannot be built: {exc}") from None
        return message

    def check(self) -> None:
        """`Unsendable` if the message cannot be built (built now, and kept)."""
        _ = self.built

    def request(self, *, return_immediately: bool) -> SendMessageRequest:
        """The `SendMessage` request of this message."""
        return SendMessageRequest(
            message=self.built,
            configuration=SendMessageConfiguration(return_immediately=return_immediately),
        )


def message_parts(arguments: dict[str, Any] | None, text: str | None) -> list[Part]:
    parts = [Part(text=text)] if text else []
    if arguments is not None:
        struct = Struct()
        struct.update(arguments)
        parts.append(Part(data=Value(struct_value=struct), media_type="application/json"))
    if not parts:
        parts.append(Part(text=""))
    return parts

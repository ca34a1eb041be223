"""What every handler whose tasks the gateway itself records answers alike.

Three kinds of target have no A2A upstream holding their tasks: MCP servers
served as agents (`gateway.federation.as_a2a`), gateway-run vendor agents
(`gateway.agents.vendor`) and calls held for approval (`gateway.agents.approval_handler`).
For all three, `GetTask` and `ListTasks` are answered from the gateway's task
records (only the caller's own; another user's task is "not found", A2A 1.0
§3.1.3), `SubscribeToTask` follows one's own task until it ends (`_follow`,
each handler's own), and push configs and the extended card are not offered. Each handler
says why in its own words (`no_push`, `no_extended_card`).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from typing import Any, ClassVar

from a2a.server.context import ServerCallContext
from a2a.server.events.event_queue import Event
from a2a.server.request_handlers.request_handler import (
    RequestHandler,
    validate_request_params,
)
from a2a.types import (
    AgentCard,
    DeleteTaskPushNotificationConfigRequest,
    GetExtendedAgentCardRequest,
    GetTaskPushNotificationConfigRequest,
    GetTaskRequest,
    ListTaskPushNotificationConfigsRequest,
    ListTaskPushNotificationConfigsResponse,
    ListTasksRequest,
    ListTasksResponse,
    SubscribeToTaskRequest,
    Task,
    TaskPushNotificationConfig,
)
from a2a.utils.errors import (
    A2AError,
    ExtendedAgentCardNotConfiguredError,
    PushNotificationNotSupportedError,
    TaskNotFoundError,
    UnsupportedOperationError,
)

from gateway.agents.admission import ADMISSION, FrontDoorParts
from gateway.agents.task_events import list_own_tasks
from gateway.delegation.runs import TERMINAL


class RecordedTaskHandler(RequestHandler):
    no_push: ClassVar[str]
    no_extended_card: ClassVar[str]

    def __init__(self, parts: Callable[[], FrontDoorParts]) -> None:
        self._parts = parts

    @staticmethod
    def _admission(context: ServerCallContext | None) -> Any:
        """The front door's admission (an `Admission`, or an MCP server's)."""
        assert context is not None
        return context.state[ADMISSION]

    async def audit(self, admission: Any, operation: str, error: A2AError | None) -> None:
        """Record the outcome of an operation; handlers that audit override it."""

    async def _own(self, admission: Any, task_id: str) -> Task:
        task = await self._parts().tasks.get(admission.agent_id, admission.owner, task_id)
        if task is None:
            await self.audit(admission, "ownership", TaskNotFoundError())
            raise TaskNotFoundError(f"task {task_id} not found")
        return task

    async def task(self, admission: Any, task_id: str) -> Task:
        """`GetTask` of one of the caller's tasks, for a caller inside the gateway."""
        return await self._own(admission, task_id)

    @validate_request_params
    async def on_get_task(self, params: GetTaskRequest, context: ServerCallContext) -> Task:
        task = await self._own(self._admission(context), params.id)
        if params.HasField("history_length"):
            keep = list(task.history)[-params.history_length :] if params.history_length else []
            del task.history[:]
            task.history.extend(keep)
        return task

    @validate_request_params
    async def on_list_tasks(
        self, params: ListTasksRequest, context: ServerCallContext
    ) -> ListTasksResponse:
        admission = self._admission(context)
        return await list_own_tasks(
            self._parts().tasks, admission.agent_id, admission.owner, params
        )

    async def on_subscribe_to_task(
        self, params: SubscribeToTaskRequest, context: ServerCallContext
    ) -> AsyncGenerator[Event]:
        events = self.subscribe(self._admission(context), params.id)
        async with contextlib.aclosing(events):
            async for event in events:
                yield event

    async def subscribe(self, admission: Any, task_id: str) -> AsyncGenerator[Event]:
        """`SubscribeToTask` of one of the caller's tasks (``admission``: an
        `Admission`, or an MCP server's)."""
        task = await self._own(admission, task_id)
        if task.status.state in TERMINAL:
            raise UnsupportedOperationError(f"task {task_id} has ended")
        # A task the gateway itself runs or holds (an approval, a deferral) can
        # wait for days: its subscription ends at the stream limit, as a relayed
        # stream does, and the client subscribes again (found by the fuzz suite:
        # a subscription to a held task stayed open for good).
        limit = self._parts().stream_limits.max_seconds
        loop = asyncio.get_running_loop()
        deadline = loop.time() + limit
        events = self._follow(admission, task)
        try:
            while (remaining := deadline - loop.time()) > 0:
                try:
                    async with asyncio.timeout(remaining) as cap:
                        event = await anext(events)
                except StopAsyncIteration:
                    return
                except TimeoutError:
                    if cap.expired():
                        return  # the limit: the stream ends here, cleanly
                    raise
                yield event
        finally:
            aclose = getattr(events, "aclose", None)
            if aclose is not None:
                await aclose()

    def _follow(self, admission: Any, task: Task) -> AsyncIterator[Event]:
        """The task, then its updates until it ends."""
        raise NotImplementedError

    async def on_create_task_push_notification_config(
        self, params: TaskPushNotificationConfig, context: ServerCallContext
    ) -> TaskPushNotificationConfig:
        raise PushNotificationNotSupportedError(self.no_push)

    async def on_get_task_push_notification_config(
        self, params: GetTaskPushNotificationConfigRequest, context: ServerCallContext
    ) -> TaskPushNotificationConfig:
        raise PushNotificationNotSupportedError(self.no_push)

    async def on_list_task_push_notification_configs(
        self, params: ListTaskPushNotificationConfigsRequest, context: ServerCallContext
    ) -> ListTaskPushNotificationConfigsResponse:
        raise PushNotificationNotSupportedError(self.no_push)

    async def on_delete_task_push_notification_config(
        self, params: DeleteTaskPushNotificationConfigRequest, context: ServerCallContext
    ) -> None:
        raise PushNotificationNotSupportedError(self.no_push)

    async def on_get_extended_agent_card(
        self, params: GetExtendedAgentCardRequest, context: ServerCallContext
    ) -> AgentCard:
        raise ExtendedAgentCardNotConfiguredError(self.no_extended_card)

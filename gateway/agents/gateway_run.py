"""Gateway-run agents by kind: one handler behind the front door for all of them.

A card with the gateway-run mark (`registry.vendor_cards.gateway_run_kind`)
names its kind: ``openai`` and ``rest`` are the vendor agents
(`gateway.agents.vendor`); a layer above may add its own kinds (``flow``:
`gateway.flows.agent`) to `GatewayRunHandlers.kinds` before the routes are
built. Each operation goes to the kind's handler, read from the admitted
agent's card; a kind nobody added goes to the vendor handler.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator, Mapping
from typing import Any

from a2a.server.context import ServerCallContext
from a2a.server.events.event_queue import Event
from a2a.server.request_handlers.request_handler import RequestHandler
from a2a.types import (
    AgentCard,
    CancelTaskRequest,
    DeleteTaskPushNotificationConfigRequest,
    GetExtendedAgentCardRequest,
    GetTaskPushNotificationConfigRequest,
    GetTaskRequest,
    ListTaskPushNotificationConfigsRequest,
    ListTaskPushNotificationConfigsResponse,
    ListTasksRequest,
    ListTasksResponse,
    Message,
    SendMessageRequest,
    SubscribeToTaskRequest,
    Task,
    TaskPushNotificationConfig,
)

from gateway.agents.admission import ADMISSION, Admission, admitted
from gateway.agents.exchange import OperationsHandler
from gateway.agents.tenants import without_tenants
from registry.vendor_cards import gateway_run_kind


@without_tenants
class GatewayRunHandlers(OperationsHandler):
    def __init__(self, default: OperationsHandler) -> None:
        self.default = default
        self.kinds: dict[str, OperationsHandler] = {}

    @property
    def handler(self) -> RequestHandler:
        """The front door's `GatewayRunAgents`: this handler serves them all."""
        return self

    @staticmethod
    def serves(card: Mapping[str, Any]) -> bool:
        return gateway_run_kind(card) is not None

    def pick(self, card: Mapping[str, Any]) -> OperationsHandler:
        kind = gateway_run_kind(card)
        return self.kinds.get(kind or "", self.default)

    def _of(self, context: ServerCallContext | None) -> OperationsHandler:
        admission = admitted(context.state.get(ADMISSION)) if context is not None else None
        return self.pick(admission.grant.card) if admission is not None else self.default

    # The plain operations (`gateway.agents.exchange`), by the admitted agent's kind.

    async def message(self, admission: Admission, params: SendMessageRequest) -> Task | Message:
        return await self.pick(admission.grant.card).message(admission, params)

    async def stream_message(
        self, admission: Admission, params: SendMessageRequest
    ) -> AsyncGenerator[Event]:
        events = self.pick(admission.grant.card).stream_message(admission, params)
        async with contextlib.aclosing(events):
            async for event in events:
                yield event

    async def task(self, admission: Admission, task_id: str) -> Task | None:
        return await self.pick(admission.grant.card).task(admission, task_id)

    async def cancel(self, admission: Admission, task_id: str) -> Task | None:
        return await self.pick(admission.grant.card).cancel(admission, task_id)

    async def subscribe(self, admission: Admission, task_id: str) -> AsyncGenerator[Event]:
        events = self.pick(admission.grant.card).subscribe(admission, task_id)
        async with contextlib.aclosing(events):
            async for event in events:
                yield event

    # The A2A door's operations, by the admitted agent's kind.

    async def on_message_send(
        self, params: SendMessageRequest, context: ServerCallContext
    ) -> Task | Message:
        # The SDK's `validate_request_params` is untyped: its wrapper says Any.
        answer: Task | Message = await self._of(context).on_message_send(params, context)
        return answer

    async def on_message_send_stream(
        self, params: SendMessageRequest, context: ServerCallContext
    ) -> AsyncGenerator[Event]:
        # Closed when its reader stops: the stream's record is written as it closes.
        async with contextlib.aclosing(
            self._of(context).on_message_send_stream(params, context)
        ) as events:
            async for event in events:
                yield event

    async def on_get_task(self, params: GetTaskRequest, context: ServerCallContext) -> Task | None:
        return await self._of(context).on_get_task(params, context)

    async def on_list_tasks(
        self, params: ListTasksRequest, context: ServerCallContext
    ) -> ListTasksResponse:
        return await self._of(context).on_list_tasks(params, context)

    async def on_cancel_task(
        self, params: CancelTaskRequest, context: ServerCallContext
    ) -> Task | None:
        return await self._of(context).on_cancel_task(params, context)

    async def on_subscribe_to_task(
        self, params: SubscribeToTaskRequest, context: ServerCallContext
    ) -> AsyncGenerator[Event]:
        async with contextlib.aclosing(
            self._of(context).on_subscribe_to_task(params, context)
        ) as events:
            async for event in events:
                yield event

    async def on_create_task_push_notification_config(
        self, params: TaskPushNotificationConfig, context: ServerCallContext
    ) -> TaskPushNotificationConfig:
        return await self._of(context).on_create_task_push_notification_config(params, context)

    async def on_get_task_push_notification_config(
        self, params: GetTaskPushNotificationConfigRequest, context: ServerCallContext
    ) -> TaskPushNotificationConfig:
        return await self._of(context).on_get_task_push_notification_config(params, context)

    async def on_list_task_push_notification_configs(
        self, params: ListTaskPushNotificationConfigsRequest, context: ServerCallContext
    ) -> ListTaskPushNotificationConfigsResponse:
        return await self._of(context).on_list_task_push_notification_configs(params, context)

    async def on_delete_task_push_notification_config(
        self, params: DeleteTaskPushNotificationConfigRequest, context: ServerCallContext
    ) -> None:
        await self._of(context).on_delete_task_push_notification_config(params, context)

    async def on_get_extended_agent_card(
        self, params: GetExtendedAgentCardRequest, context: ServerCallContext
    ) -> AgentCard:
        return await self._of(context).on_get_extended_agent_card(params, context)

"""The gateway's own A2A endpoint (`/a2a`) and its card."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Callable

from a2a.server.context import ServerCallContext
from a2a.server.events.event_queue import Event
from a2a.server.request_handlers.request_handler import (
    RequestHandler,
)
from a2a.server.routes.common import ServerCallContextBuilder
from a2a.types import (
    AgentCard,
    AgentSkill,
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
from a2a.utils.errors import (
    PushNotificationNotSupportedError,
    TaskNotFoundError,
    UnsupportedOperationError,
)
from google.protobuf.json_format import ParseDict
from starlette.requests import Request

from gateway.agents.admission import PRINCIPAL, FrontDoorParts, call_context
from gateway.agents.cards import gateway_card
from gateway.delegation.pipeline import (
    Caller,
)
from policies.tokens import Principal


class GatewayHandler(RequestHandler):
    """The gateway's own A2A endpoint (`/a2a`): it runs no tasks itself, and its
    authenticated extended card lists the skills the caller may use, across
    every registered agent (skill ids are `<agent id>/<skill id>`)."""

    def __init__(self, parts: Callable[[], FrontDoorParts]) -> None:
        self._parts = parts

    @staticmethod
    def _nothing_here() -> UnsupportedOperationError:
        return UnsupportedOperationError(
            "the gateway runs no tasks itself: send to /a2a/{agent_id} (see the extended card)"
        )

    async def card(self, principal: Principal | None = None) -> AgentCard:
        parts = self._parts()
        skills: list[AgentSkill] = []
        if principal is not None:
            skills = await self._usable_skills(principal)
        card = gateway_card(
            parts.public_url + "/a2a",
            parts.public_url,
            parts.token_endpoint,
            parts.version,
            skills,
            extended=principal is not None,
        )
        return await parts.sign(card)

    async def _usable_skills(self, principal: Principal) -> list[AgentSkill]:
        """Each skill decided as a message for it is (`Delegations.usable_skills`)."""
        delegations = self._parts().delegations
        caller = Caller.user(principal)
        skills: list[AgentSkill] = []
        async for record, card in delegations.agents.all_with_cards():
            for skill in delegations.usable_skills(caller, record.id, card):
                entry = AgentSkill()
                ParseDict(
                    {k: v for k, v in skill.items() if k != "securityRequirements"},
                    entry,
                    ignore_unknown_fields=True,
                )
                entry.id = f"{record.id}/{entry.id}"
                entry.tags.append(f"agent:{record.id}")
                skills.append(entry)
        return skills

    async def on_get_extended_agent_card(
        self, params: GetExtendedAgentCardRequest, context: ServerCallContext
    ) -> AgentCard:
        principal: Principal = context.state[PRINCIPAL]
        return await self.card(principal)

    async def on_message_send(
        self, params: SendMessageRequest, context: ServerCallContext
    ) -> Task | Message:
        raise self._nothing_here()

    async def on_message_send_stream(
        self, params: SendMessageRequest, context: ServerCallContext
    ) -> AsyncGenerator[Event]:
        raise self._nothing_here()
        yield  # pragma: no cover - makes this an async generator

    async def on_get_task(self, params: GetTaskRequest, context: ServerCallContext) -> Task:
        raise TaskNotFoundError

    async def on_list_tasks(
        self, params: ListTasksRequest, context: ServerCallContext
    ) -> ListTasksResponse:
        return ListTasksResponse(page_size=params.page_size or 50)

    async def on_cancel_task(self, params: CancelTaskRequest, context: ServerCallContext) -> Task:
        raise TaskNotFoundError

    async def on_subscribe_to_task(
        self, params: SubscribeToTaskRequest, context: ServerCallContext
    ) -> AsyncGenerator[Event]:
        raise TaskNotFoundError
        yield  # pragma: no cover - makes this an async generator

    async def on_create_task_push_notification_config(
        self, params: TaskPushNotificationConfig, context: ServerCallContext
    ) -> TaskPushNotificationConfig:
        raise PushNotificationNotSupportedError

    async def on_get_task_push_notification_config(
        self, params: GetTaskPushNotificationConfigRequest, context: ServerCallContext
    ) -> TaskPushNotificationConfig:
        raise PushNotificationNotSupportedError

    async def on_list_task_push_notification_configs(
        self, params: ListTaskPushNotificationConfigsRequest, context: ServerCallContext
    ) -> ListTaskPushNotificationConfigsResponse:
        raise PushNotificationNotSupportedError

    async def on_delete_task_push_notification_config(
        self, params: DeleteTaskPushNotificationConfigRequest, context: ServerCallContext
    ) -> None:
        raise PushNotificationNotSupportedError


class GatewayContextBuilder(ServerCallContextBuilder):
    def build(self, request: Request) -> ServerCallContext:
        principal: Principal = request.state.principal
        return call_context(request, principal.subject, PRINCIPAL, principal)

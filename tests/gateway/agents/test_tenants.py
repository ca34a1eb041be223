"""`without_tenants` clears a request's tenant in every operation the A2A
handler answers -- its own and those its bases (a mixin) define."""

from __future__ import annotations

import asyncio
import inspect
from typing import Any, cast

from a2a.server.request_handlers.request_handler import RequestHandler
from a2a.types import DeleteTaskPushNotificationConfigRequest, SendMessageRequest

from gateway.agents.gateway_run import GatewayRunHandlers
from gateway.agents.handler import AgentHandler
from gateway.agents.tenants import CLEARED, without_tenants


def test_every_operation_of_the_agents_handler_clears_the_tenant() -> None:
    operations = [n for n in dir(AgentHandler) if n.startswith("on_")]
    # A push operation is the mixin's (`PushConfigs`), not the handler's own.
    pushed = inspect.unwrap(AgentHandler.on_delete_task_push_notification_config)
    assert pushed.__qualname__.startswith("PushConfigs."), pushed.__qualname__
    assert {"on_delete_task_push_notification_config", "on_get_task"} <= set(operations)
    for name in operations:
        assert getattr(getattr(AgentHandler, name), CLEARED, False), name


def test_a_bases_operation_sees_no_tenant_and_is_wrapped_once() -> None:
    seen: list[str] = []

    class Mixin:
        async def on_delete_task_push_notification_config(
            self, params: DeleteTaskPushNotificationConfigRequest, context: Any = None
        ) -> None:
            seen.append(params.tenant)

    class Door(Mixin):
        pass

    door = without_tenants(cast(type[RequestHandler], Door))
    wrapped = door.on_delete_task_push_notification_config
    assert without_tenants(door).on_delete_task_push_notification_config is wrapped
    request = DeleteTaskPushNotificationConfigRequest(task_id="t", id="c", tenant="other")
    asyncio.run(wrapped(Door(), request))  # type: ignore[arg-type,call-arg]
    assert seen == [""]


def test_the_plain_operations_a_flows_step_calls_clear_the_tenant_too() -> None:
    # A flow's agent step calls `message` / `stream_message` with no door
    # before them: the request they are handed goes upstream as it is.
    for handler in (AgentHandler, GatewayRunHandlers):
        for name in ("message", "stream_message"):
            assert getattr(getattr(handler, name), CLEARED, False), (handler, name)
    seen: list[str] = []

    class Door:
        async def message(self, admission: Any, params: SendMessageRequest) -> None:
            seen.append(params.tenant)

        async def stream_message(self, admission: Any, params: SendMessageRequest) -> Any:
            seen.append(params.tenant)
            yield params

    door = without_tenants(cast(type[RequestHandler], Door))

    async def called() -> None:
        await door.message(Door(), None, SendMessageRequest(tenant="other"))  # type: ignore[attr-defined]
        await door.message(Door(), None, params=SendMessageRequest(tenant="other"))  # type: ignore[attr-defined]
        async for _ in door.stream_message(Door(), None, SendMessageRequest(tenant="other")):  # type: ignore[attr-defined]
            pass

    asyncio.run(called())
    assert seen == ["", "", ""]

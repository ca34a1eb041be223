"""`without_tenants` clears a request's tenant in every operation the A2A
handler answers -- its own and those its bases (a mixin) define."""

from __future__ import annotations

import asyncio
import inspect
from typing import Any, cast

from a2a.server.request_handlers.request_handler import RequestHandler
from a2a.types import DeleteTaskPushNotificationConfigRequest

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

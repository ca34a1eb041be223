"""Push notifications on a registered agent (A2A 1.0 §4.3), the part of
`gateway.agents.handler.AgentHandler` that keeps clients' webhooks from the
agent: a client's config is stored and the agent given a relay of the
gateway's (`gateway.delegation.push`); what the agent sends there is
recorded against the task and forwarded.

A relay may also only record (`watch_task`): the gateway's own watch on a
task whose agent does not stream, so that a flow waiting on the task
learns of each state from the agent's push instead of asking it again and
again (`gateway.flows.task_follower`). Its config has no webhook -- a
client's never lacks one (`_check_webhook` refuses it) -- and clients do
not see it among their task's configs.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging

import httpx
from a2a.server.context import ServerCallContext
from a2a.server.request_handlers.request_handler import validate_request_params
from a2a.types import (
    DeleteTaskPushNotificationConfigRequest,
    GetTaskPushNotificationConfigRequest,
    ListTaskPushNotificationConfigsRequest,
    ListTaskPushNotificationConfigsResponse,
    SendMessageRequest,
    StreamResponse,
    TaskPushNotificationConfig,
)
from a2a.utils.errors import (
    A2AError,
    InvalidParamsError,
    PushNotificationNotSupportedError,
    TaskNotFoundError,
)
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from gateway.agents.admission import Admission, FrontDoorParts, admission_of, handler_context
from gateway.agents.calls import AgentCalls
from gateway.agents.task_events import event_of, task_id_of
from gateway.delegation.push import CredentialsUnavailable, Relay, RelayRefused, records_only
from gateway.delegation.push_checks import header_problem, id_problem, parse_notification
from registry.fetch import FetchError, FetchRefused

logger = logging.getLogger(__name__)


class PushConfigs(AgentCalls):
    """Push notification configs and their relay, on one registered agent."""

    async def _inline_push(
        self, admission: Admission, params: SendMessageRequest, operation: str
    ) -> str | None:
        """A push config inside SendMessage (A2A 1.0 §3.2.2): checked as
        CreateTaskPushNotificationConfig checks one, stored, and swapped in
        ``params`` for the gateway's relay -- the agent must never be handed
        the client's webhook, which it would call past the gateway's checks.
        Returns the relay URL the agent is given (None: no inline config);
        the call's outcome then binds it to its task or removes it."""
        if not params.configuration.HasField("task_push_notification_config"):
            return None
        given = params.configuration.task_push_notification_config
        try:
            self._check_push(admission)
            if given.task_id and given.task_id != params.message.task_id:
                raise InvalidParamsError(
                    "configuration.taskPushNotificationConfig.taskId must be the message's taskId"
                )
            await self._check_webhook(given)
        except A2AError as refusal:
            await self.audit(admission, operation, refusal, "; not called")
            raise
        config = TaskPushNotificationConfig()
        config.CopyFrom(given)
        config.task_id = params.message.task_id  # "" for a new task: stored pending
        _, upstream = await self._parts().push.create(admission.agent_id, admission.owner, config)
        params.configuration.task_push_notification_config.CopyFrom(upstream)
        return upstream.url

    async def _check_webhook(self, config: TaskPushNotificationConfig) -> None:
        """A client's webhook as a push config may name it. A URL the SSRF
        rules refuse (a private, link-local or metadata address, a bad
        scheme) is refused here; a host name that does not resolve *now* is
        not a refusal -- every delivery resolves and checks it again at
        connect time (`adapters.http.SafeResolver`), so it can never reach
        a refused address, and the agent's own store would take it too."""
        if (problem := header_problem(config) or id_problem(config.id)) is not None:
            raise InvalidParamsError(problem)
        try:
            await self._parts().fetcher.resolve(config.url)
        except FetchRefused as exc:
            raise InvalidParamsError(f"push notification url refused: {exc}") from None
        except FetchError:
            logger.info("push notification url %s does not resolve now", config.url[:200])

    async def _settle_push(self, admission: Admission, relay: str | None, task_id: str) -> None:
        """Bind an inline config to its task, or remove it (no task came)."""
        if relay is None:
            return
        push = self._parts().push
        if task_id:
            await push.bind(admission.agent_id, relay, task_id)
        else:
            await push.forget_pending(admission.agent_id, relay)

    def _check_push(self, admission: Admission) -> None:
        capabilities = admission.grant.card.get("capabilities") or {}
        if not capabilities.get("pushNotifications"):
            raise PushNotificationNotSupportedError(
                f"agent {admission.agent_id} does not send push notifications"
            )

    @validate_request_params
    async def on_create_task_push_notification_config(
        self, params: TaskPushNotificationConfig, context: ServerCallContext
    ) -> TaskPushNotificationConfig:
        admission = admission_of(context)
        self._check_push(admission)
        await self._own_task(admission, params.task_id)
        await self._check_webhook(params)
        return await self._relayed(admission, params)

    async def _relayed(
        self, admission: Admission, config: TaskPushNotificationConfig
    ) -> TaskPushNotificationConfig:
        """``config`` stored, and the agent given its relay; removed again
        if the agent refuses it. What is stored (without credentials)."""
        parts = self._parts()
        stored, upstream = await parts.push.create(admission.agent_id, admission.owner, config)
        try:
            await self._call(
                admission,
                "CreateTaskPushNotificationConfig",
                lambda t, c: t.create_task_push_notification_config(upstream, context=c),
            )
        except A2AError:
            await parts.push.delete(admission.agent_id, admission.owner, stored.task_id, stored.id)
            raise
        return stored

    async def watch_task(self, admission: Admission, task_id: str, config_id: str) -> None:
        """The gateway's own watch on the caller's task ``task_id``: the
        agent is given a relay that records what it pushes and forwards
        nothing. Refused as a client's config would be: an agent that sends
        no push notifications (`PushNotificationNotSupportedError`), a task
        not the caller's, the agent's own refusal."""
        self._check_push(admission)
        await self._own_task(admission, task_id)
        config = TaskPushNotificationConfig(task_id=task_id, id=config_id)  # no url: records only
        await self._relayed(admission, config)

    async def unwatch_task(self, admission: Admission, task_id: str, config_id: str) -> None:
        """The watch removed, here and (a courtesy) at the agent."""
        request = DeleteTaskPushNotificationConfigRequest(task_id=task_id, id=config_id)
        await self.on_delete_task_push_notification_config(request, handler_context(admission))

    @validate_request_params
    async def on_get_task_push_notification_config(
        self, params: GetTaskPushNotificationConfigRequest, context: ServerCallContext
    ) -> TaskPushNotificationConfig:
        admission = admission_of(context)
        self._check_push(admission)
        await self._own_task(admission, params.task_id)
        found = await self._parts().push.configs(
            admission.agent_id, admission.owner, params.task_id, params.id
        )
        if not found:
            raise TaskNotFoundError(f"no push notification config {params.id}")
        return found[0]

    @validate_request_params
    async def on_list_task_push_notification_configs(
        self, params: ListTaskPushNotificationConfigsRequest, context: ServerCallContext
    ) -> ListTaskPushNotificationConfigsResponse:
        admission = admission_of(context)
        self._check_push(admission)
        await self._own_task(admission, params.task_id)
        found = await self._parts().push.configs(
            admission.agent_id, admission.owner, params.task_id
        )
        return ListTaskPushNotificationConfigsResponse(configs=found)

    @validate_request_params
    async def on_delete_task_push_notification_config(
        self, params: DeleteTaskPushNotificationConfigRequest, context: ServerCallContext
    ) -> None:
        admission = admission_of(context)
        self._check_push(admission)
        await self._own_task(admission, params.task_id)
        parts = self._parts()
        if not await parts.push.delete(
            admission.agent_id, admission.owner, params.task_id, params.id
        ):
            # A2A 1.0 §3.1.10: delete "MUST be idempotent - multiple deletions
            # of the same config have the same effect". The task is the
            # caller's (checked above); a config already gone is no error.
            await self.audit(admission, "DeleteTaskPushNotificationConfig", None, "; none left")
            return
        # The agent's copy points at a relay that no longer exists; removing it
        # is a courtesy, and a failure leaves nothing the agent could use.
        with contextlib.suppress(A2AError):
            await self._call(
                admission,
                "DeleteTaskPushNotificationConfig",
                lambda t, c: t.delete_task_push_notification_config(params, context=c),
            )

    async def relay_notification(self, request: Request) -> Response:
        """`POST /a2a/{agent_id}/push/{relay_id}`: a notification from the agent."""
        parts = self._parts()
        agent_id = request.path_params["agent_id"]
        try:
            relay = await parts.push.relay_for(
                agent_id,
                request.path_params["relay_id"],
                request.headers.get("x-a2a-notification-token"),
            )
        except RelayRefused:
            return JSONResponse({"error": "unknown relay or wrong token"}, status_code=401)
        try:
            event = parse_notification(json.loads(await request.body()))
        except (ValueError, RecursionError) as exc:
            return JSONResponse({"error": str(exc)[:300]}, status_code=400)
        task_id = task_id_of(event)
        if relay.pending and task_id:
            # An inline config's first notification may come before the
            # answer that names its task. Bound only to a task recorded as
            # the relay owner's (a task id the agent gave someone else is
            # not this config's, whatever the agent says).
            await parts.tasks.observe(agent_id, relay.owner, event_of(event))
            if await parts.tasks.get(agent_id, relay.owner, task_id) is None:
                return JSONResponse({"error": "the event is about another task"}, status_code=400)
            await parts.push.bind(agent_id, request.path_params["relay_id"], task_id)
            relay = dataclasses.replace(relay, task_id=task_id)
        elif (task_id and task_id != relay.task_id) or not await parts.tasks.observe(
            agent_id, relay.owner, event_of(event)
        ):
            return JSONResponse({"error": "the event is about another task"}, status_code=400)
        if records_only(relay.config):
            return Response(status_code=204)  # the gateway's own watch: recorded, that is all
        return await _forwarded(parts, relay, event, agent_id)


async def _forwarded(
    parts: FrontDoorParts, relay: Relay, event: StreamResponse, agent_id: str
) -> Response:
    """The notification sent on to the client's webhook; a failure answered
    502 and logged without the config's secrets."""
    try:
        status = await parts.push.forward(parts.upstreams.http, relay, event)
    except CredentialsUnavailable as exc:
        # Recorded, not forwarded: this config's credentials cannot be
        # opened (the reason names no secret). Other configs are unaffected.
        logger.warning(
            "push config %s of task %s (agent %s) not forwarded: %s",
            relay.config_id,
            relay.task_id,
            agent_id,
            exc,
        )
        return JSONResponse(
            {"error": "the client's webhook credentials cannot be used"}, status_code=502
        )
    except httpx.HTTPError as exc:
        logger.warning("push to the webhook of task %s failed: %r", relay.task_id, exc)
        return JSONResponse({"error": "the client's webhook is unreachable"}, status_code=502)
    except ValueError as exc:
        # A header the HTTP client refuses (a control character in a
        # config stored before `header_problem` was checked on create).
        # Its message may quote the value, a secret: only the type is logged.
        logger.warning(
            "push config %s of task %s (agent %s) not forwarded: %s in its headers",
            relay.config_id,
            relay.task_id,
            agent_id,
            type(exc).__name__,
        )
        return JSONResponse(
            {"error": "the client's webhook headers cannot be sent"}, status_code=502
        )
    if status >= 400:
        return JSONResponse({"error": f"the client's webhook answered {status}"}, 502)
    return Response(status_code=204)

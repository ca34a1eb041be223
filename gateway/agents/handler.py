"""The A2A operations on a registered agent: the SDK's `RequestHandler`
behind `/a2a/{agent_id}`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
from collections.abc import AsyncGenerator
from typing import Any

import httpx
from a2a.server.context import ServerCallContext
from a2a.server.events.event_queue import Event
from a2a.server.request_handlers.request_handler import (
    RequestHandler,
    validate_request_params,
)
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
    Role,
    SendMessageRequest,
    SubscribeToTaskRequest,
    Task,
    TaskPushNotificationConfig,
)
from a2a.utils.errors import (
    A2AError,
    ExtendedAgentCardNotConfiguredError,
    InternalError,
    InvalidParamsError,
    PushNotificationNotSupportedError,
    TaskNotFoundError,
)
from a2a.utils.task import validate_history_length
from google.protobuf.json_format import MessageToDict
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from gateway.agents.admission import Admission, admission_of
from gateway.agents.approvals import APPROVAL_META as HELD_META
from gateway.agents.calls import RUNNING, UpstreamCalls
from gateway.agents.cards import proxied_card
from gateway.agents.task_events import event_of, first_then_rest, list_own_tasks, task_id_of
from gateway.agents.tenants import without_tenants
from gateway.connections.errors import ConnectionRequired
from gateway.delegation.push import (
    CredentialsUnavailable,
    RelayRefused,
    header_problem,
    id_problem,
    parse_notification,
)
from gateway.delegation.runs import TERMINAL
from registry.fetch import FetchError, FetchRefused

logger = logging.getLogger(__name__)


@without_tenants
class AgentHandler(UpstreamCalls, RequestHandler):
    """Every A2A operation on one registered agent, through the pipeline
    (`UpstreamCalls` holds how the agent is called)."""

    async def _deferred(self, admission: Admission, task_id: str) -> RequestHandler | None:
        """The handler of ``task_id`` if it is a held call's task: deferred by a
        coordination rule, or waiting for an approval the policy asks for on
        one skill (an approval on the whole agent sends every operation to
        the approvals handler already), or for its user to connect their
        account at the agent. Looked up only while the policy can hold a
        call, or the agent takes its users' own tokens."""
        if self.held is None:
            return None
        parts = self._parts()
        if not parts.delegations.policy.current.can_hold and (
            parts.consents is None or parts.consents.upstream(admission.grant) is None
        ):
            return None
        task = await self.tasks.get(admission.agent_id, admission.owner, task_id)
        return self.held if task is not None and HELD_META in task.metadata else None

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

    async def check_message(self, admission: Admission, message: Message) -> None:
        if message.role != Role.ROLE_USER:
            # A client's message is the user's (A2A 1.0, Message.role: ROLE_USER
            # from client to agent): an agent's SDK refuses any other with an
            # internal error (-32603), which would read as the agent failing.
            refusal = InvalidParamsError(
                f"message.role must be ROLE_USER, not {Role.Name(message.role)}"
            )
            await self.audit(admission, "SendMessage", refusal, "; not called")
            raise refusal
        for index, part in enumerate(message.parts):
            # A Part holds exactly one of text, raw, url, data (the `content`
            # oneof of a2a.proto); protobuf's JSON parser lets one through with
            # none (`""` parses as an empty Part), which no agent can read and
            # a 0.3 agent's translation fails on.
            if part.WhichOneof("content") is None:
                refusal = InvalidParamsError(
                    f"message.parts[{index}] has no content: one of text, raw, url or data"
                )
                await self.audit(admission, "SendMessage", refusal, "; not called")
                raise refusal
        if message.task_id:
            await self._own_task(admission, message.task_id)
        for referenced in message.reference_task_ids:
            await self._own_task(admission, referenced)
        if message.context_id:
            owners = await self.tasks.context_owners(admission.agent_id, message.context_id)
            if owners and owners != {admission.owner}:
                await self.audit(admission, "ownership", TaskNotFoundError())
                raise TaskNotFoundError(f"context {message.context_id} not found")

    # Messages -------------------------------------------------------------

    @validate_request_params
    async def on_message_send(
        self, params: SendMessageRequest, context: ServerCallContext
    ) -> Task | Message:
        admission = admission_of(context)
        await self.check_message(admission, params.message)
        skill = await self._checked_skill(admission, params, "SendMessage")
        relay = await self._inline_push(admission, params, "SendMessage")
        task_id = ""  # the task the inline config is bound to: only one recorded as the caller's
        asked = admission
        try:
            try:
                admission, response = await self._send(
                    admission,
                    skill,
                    "SendMessage",
                    lambda t, c: t.send_message(params, context=c),
                    self._take_answer,
                )
            except ConnectionRequired as needed:
                return await self.held_for_consent(asked, params, needed)
            if response.HasField("task"):
                task_id = response.task.id
                return response.task
            return response.message
        finally:
            if admission.agent_id != asked.agent_id:
                # A fallback took the call: it was handed a relay of the agent
                # asked, under which its task is not recorded. Not kept.
                task_id = ""
            await self._settle_push(asked, relay, task_id)

    @validate_request_params
    async def on_message_send_stream(
        self, params: SendMessageRequest, context: ServerCallContext
    ) -> AsyncGenerator[Event]:
        admission = admission_of(context)
        capabilities = admission.grant.card.get("capabilities") or {}
        if not capabilities.get("streaming"):
            # The agent does not stream: its one answer is the whole stream.
            yield await self.on_message_send(params, context)
            return
        await self.check_message(admission, params.message)
        skill = await self._checked_skill(admission, params, "SendStreamingMessage")
        admission = await self._stream_target(admission, skill)
        relay = await self._inline_push(admission, params, "SendStreamingMessage")
        task_id = ""
        events = self._relay(
            admission,
            "SendStreamingMessage",
            lambda t, c: t.send_message_streaming(params, context=c),
        )
        try:
            try:
                first = await anext(events)
            except ConnectionRequired as needed:  # before anything came
                yield await self.held_for_consent(admission, params, needed)
                return
            except StopAsyncIteration:
                return
            async for event in first_then_rest(first, events):
                if relay is not None and not task_id:
                    # `_relay` yields an event only once it is recorded as the
                    # caller's: bound before the client can ask for it.
                    task_id = _task_id_of(event)
                    if task_id:
                        await self._settle_push(admission, relay, task_id)
                yield event
        finally:
            if relay is not None and not task_id:
                await self._settle_push(admission, relay, "")

    # Tasks ----------------------------------------------------------------

    @validate_request_params
    async def on_get_task(self, params: GetTaskRequest, context: ServerCallContext) -> Task:
        validate_history_length(params)
        admission = admission_of(context)
        held = await self._deferred(admission, params.id)
        if held is not None:
            return await held.on_get_task(params, context)  # type: ignore[return-value]
        await self._own_task(admission, params.id)
        try:
            task = await self._call(
                admission,
                "GetTask",
                lambda t, c: t.get_task(params, context=c),
                idempotent=True,
                accept=self.remember,
            )
        except (InternalError, TaskNotFoundError):
            # The agent cannot be reached, or no longer knows the task (it
            # restarted): an end the gateway recorded (its own verdict after
            # losing contact, say) still stands; a running task is reconciled.
            recorded = await self.tasks.get(admission.agent_id, admission.owner, params.id)
            if recorded is not None and recorded.status.state in TERMINAL:
                return recorded
            if recorded is not None and recorded.status.state in RUNNING:
                await self._lost_contact(admission, params.id)
            raise
        return task

    @validate_request_params
    async def on_list_tasks(
        self, params: ListTasksRequest, context: ServerCallContext
    ) -> ListTasksResponse:
        # Answered from the gateway's records: only the caller's tasks, for
        # every agent, whether or not the agent itself implements ListTasks.
        admission = admission_of(context)
        page = await list_own_tasks(self.tasks, admission.agent_id, admission.owner, params)
        await self.audit(admission, "ListTasks", None)
        return page

    @validate_request_params
    async def on_cancel_task(self, params: CancelTaskRequest, context: ServerCallContext) -> Task:
        admission = admission_of(context)
        held = await self._deferred(admission, params.id)
        if held is not None:
            return await held.on_cancel_task(params, context)  # type: ignore[return-value]
        await self._own_task(admission, params.id)
        return await self._call(
            admission,
            "CancelTask",
            lambda t, c: t.cancel_task(params, context=c),
            accept=self.remember,
        )

    @validate_request_params
    async def on_subscribe_to_task(
        self, params: SubscribeToTaskRequest, context: ServerCallContext
    ) -> AsyncGenerator[Event]:
        admission = admission_of(context)
        held = await self._deferred(admission, params.id)
        if held is not None:
            async for event in held.on_subscribe_to_task(params, context):
                yield event
            return
        await self._own_task(admission, params.id)
        async for event in self._relay(
            admission, "SubscribeToTask", lambda t, c: t.subscribe(params, context=c)
        ):
            yield event

    # Push notification configs ----------------------------------------------

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
        parts = self._parts()
        stored, upstream = await parts.push.create(admission.agent_id, admission.owner, params)
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

    # Cards ----------------------------------------------------------------

    async def on_get_extended_agent_card(
        self, params: GetExtendedAgentCardRequest, context: ServerCallContext
    ) -> AgentCard:
        admission = admission_of(context)
        capabilities = admission.grant.card.get("capabilities") or {}
        if not capabilities.get("extendedAgentCard"):
            raise ExtendedAgentCardNotConfiguredError(
                f"agent {admission.agent_id} has no extended card"
            )
        extended = await self._call(
            admission,
            "GetExtendedAgentCard",
            lambda t, c: t.get_extended_agent_card(params, context=c),
            idempotent=True,
        )
        card = MessageToDict(extended)
        # Only the skills this caller may call, as every listing of skills:
        # decided on the registered card, as a call is (a skill the extended
        # card alone names is unknown to the decision, so refused anyway).
        usable = self.delegations.usable_skills(
            admission.grant.caller, admission.agent_id, admission.grant.card
        )
        ids = {skill["id"] for skill in usable}
        card["skills"] = [s for s in card.get("skills", []) if s.get("id") in ids]
        return await self.card_for(admission.agent_id, card)

    async def card_for(self, agent_id: str, upstream_card: dict[str, Any]) -> AgentCard:
        parts = self._parts()
        url = f"{parts.public_url}/a2a/{agent_id}"
        card = proxied_card(upstream_card, url, parts.token_endpoint, parts.grpc_target, agent_id)
        return await parts.sign(card)


def _task_id_of(event: Event) -> str:
    """The task a stream event is about: a Task's id, an update's task_id; a
    Message alone makes no task."""
    if isinstance(event, Task):
        return str(event.id)
    if isinstance(event, Message):
        return ""
    return str(event.task_id)

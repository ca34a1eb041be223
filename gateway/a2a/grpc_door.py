"""The A2A front door over gRPC (A2A 1.0 §10, service `lf.a2a.v1.A2AService`).

gRPC has no paths: the gateway serves every agent on one gRPC target, and a
request names its agent in its `tenant` field, which the agent's card gives
with the gRPC interface (A2A 1.0 §4.4.6 `AgentInterface.tenant`: clients set
it on every request). A request without one is refused INVALID_ARGUMENT.

Everything else is the HTTP door's: the caller's bearer token (`authorization`
metadata) authenticated the same way, the same decision (`gateway.a2a.admit`),
the same handlers behind the SDK's `GrpcHandler` -- ownership, minted tokens,
audit, version translation upstream -- and the same outage answer, here
UNAVAILABLE with `retry-after` trailing metadata. A refusal is a gRPC status
with a `google.rpc.ErrorInfo` (reason DELEGATION_REFUSED, domain switchboard,
the refusal's data as metadata), as the HTTP+JSON binding carries it.
A2A 0.3's gRPC service has no tenant to name an agent by and is not served.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
from collections.abc import AsyncIterator
from typing import Any

import grpc
import grpc.aio
from a2a.extensions.common import HTTP_EXTENSION_HEADER, get_requested_extensions
from a2a.server.context import ServerCallContext
from a2a.server.request_handlers.grpc_handler import GrpcHandler, GrpcServerCallContextBuilder
from a2a.types import a2a_pb2_grpc
from a2a.utils.constants import VERSION_HEADER
from a2a.utils.errors import (
    InvalidParamsError,
    VersionNotSupportedError,
)
from google.protobuf.message import Message

from adapters.trace_context import begin as begin_trace
from gateway.a2a.admit import Admitted, Refusal, admit_call, decide_skill
from gateway.a2a.front import A2AFrontDoor
from gateway.a2a.grpc_errors import GatewayGrpcHandler, abort_refused
from gateway.a2a.grpc_server import Malformed
from gateway.a2a.numbers import non_finite
from gateway.agents.admission import ADMISSION, admitted, admitted_context
from gateway.agents.outages import (
    OutageNote,
    current_note,
    note_caller,
    outage_record,
    unavailable_error,
)
from gateway.delegation.call import MessageSkill
from gateway.delegation.pipeline import Caller
from gateway.delegation.tasks import Owner
from gateway.http.auth import (
    API_KEY_HEADER,
    CredentialHeaderError,
    RequestAuth,
    credential_of,
    onwards_principal,
)
from gateway.storage.outages import outage_of
from policies.api_keys import looks_like_key
from policies.tokens import Principal, TokenInvalid
from registry.store import is_agent_id

security = logging.getLogger("switchboard.security")

# The call context of the request being served, for the SDK's GrpcHandler.
_call: contextvars.ContextVar[ServerCallContext | None] = contextvars.ContextVar(
    "a2a_grpc_call", default=None
)


class _Admitted(GrpcServerCallContextBuilder):
    def build(self, context: grpc.aio.ServicerContext) -> ServerCallContext:
        call = _call.get()
        assert call is not None, "a gRPC call reached a handler without admission"
        return call


class _Lines(dict[str, list[str]]):
    """Metadata as `adapters.trace_context` reads headers."""

    def getlist(self, key: str) -> list[str]:
        return self.get(key.lower(), [])


def _metadata(context: grpc.aio.ServicerContext) -> _Lines:
    found = _Lines()
    for key, value in context.invocation_metadata() or ():
        if isinstance(value, bytes):  # a -bin key: nothing the door reads
            continue
        found.setdefault(key.lower(), []).append(value)
    return found


class GrpcFrontDoor(a2a_pb2_grpc.A2AServiceServicer):
    """`lf.a2a.v1.A2AService` for every agent of the HTTP door ``door``."""

    def __init__(self, door: A2AFrontDoor, auth: RequestAuth) -> None:
        self._door = door
        self._auth = auth
        admitted = _Admitted()
        self._agents = GatewayGrpcHandler(door.handler, admitted)
        self._others = GatewayGrpcHandler(door.others.handler, admitted) if door.others else None
        self._runs = (
            GatewayGrpcHandler(door.gateway_run.handler, admitted) if door.gateway_run else None
        )
        self._held = GatewayGrpcHandler(door.approvals, admitted) if door.approvals else None

    # The service's operations -------------------------------------------------

    async def SendMessage(self, request: Any, context: Any) -> Any:
        return await self._unary("SendMessage", request, context, message=True)

    async def SendStreamingMessage(self, request: Any, context: Any) -> AsyncIterator[Any]:
        # An async generator function: how grpc.aio tells a stream from a unary call.
        async for event in self._stream("SendStreamingMessage", request, context, message=True):
            yield event

    async def GetTask(self, request: Any, context: Any) -> Any:
        return await self._unary("GetTask", request, context)

    async def ListTasks(self, request: Any, context: Any) -> Any:
        return await self._unary("ListTasks", request, context)

    async def CancelTask(self, request: Any, context: Any) -> Any:
        return await self._unary("CancelTask", request, context)

    async def SubscribeToTask(self, request: Any, context: Any) -> AsyncIterator[Any]:
        # An async generator function: how grpc.aio tells a stream from a unary call.
        async for event in self._stream("SubscribeToTask", request, context):
            yield event

    async def CreateTaskPushNotificationConfig(self, request: Any, context: Any) -> Any:
        return await self._unary("CreateTaskPushNotificationConfig", request, context)

    async def GetTaskPushNotificationConfig(self, request: Any, context: Any) -> Any:
        return await self._unary("GetTaskPushNotificationConfig", request, context)

    async def ListTaskPushNotificationConfigs(self, request: Any, context: Any) -> Any:
        return await self._unary("ListTaskPushNotificationConfigs", request, context)

    async def DeleteTaskPushNotificationConfig(self, request: Any, context: Any) -> Any:
        return await self._unary("DeleteTaskPushNotificationConfig", request, context)

    async def GetExtendedAgentCard(self, request: Any, context: Any) -> Any:
        return await self._unary("GetExtendedAgentCard", request, context)

    # One call ------------------------------------------------------------------

    async def _unary(self, name: str, request: Message, context: Any, message: bool = False) -> Any:
        # An outage is answered (an abort) inside the held call, as on the HTTP doors.
        async with self._holding() as held, self._outages(request, context):
            handler = await self._admit(request, context, held, message=message)
            return await getattr(handler, name)(request, context)

    async def _stream(
        self, name: str, request: Message, context: Any, message: bool = False
    ) -> AsyncIterator[Any]:
        async with self._holding() as held, self._outages(request, context):
            handler = await self._admit(request, context, held, message=message)
            items = getattr(handler, name)(request, context)
            async with contextlib.aclosing(items):  # its record first
                async for item in items:
                    yield item

    @contextlib.asynccontextmanager
    async def _holding(self) -> AsyncIterator[contextlib.AsyncExitStack]:
        """The call held open while its handler makes it (`Delegate.open`).
        An abort is the handler's answer said in gRPC, as the HTTP doors'
        error responses are: it closes the call as an answer does, so a
        refusal the handler did not record stays unrecorded on every door."""
        aborted: grpc.aio.AbortError | None = None
        async with contextlib.AsyncExitStack() as held:
            try:
                yield held
            except grpc.aio.AbortError as exc:
                aborted = exc
        if aborted is not None:
            raise aborted

    @contextlib.asynccontextmanager
    async def _outages(self, request: Message, context: Any) -> AsyncIterator[None]:
        """An outage met in the call, in a handler (`watch`) or admitting it,
        answered UNAVAILABLE and audited, as the HTTP door's `outage_guard`."""
        note = OutageNote()
        noted = current_note.set(note)
        agent_id = getattr(request, "tenant", "")  # read before `_admit` clears it
        try:
            yield
        except Exception as exc:
            await self._outage(exc, note, context)
            raise
        finally:
            # A stream its reader left is closed by the collector, in another context.
            with contextlib.suppress(ValueError):
                current_note.reset(noted)
            if note.outage is not None:
                call = _call.get()
                admission = admitted(call.state.get(ADMISSION)) if call is not None else None
                event = outage_record(
                    admission, agent_id or None, note.outage, _metadata(context), note.caller
                )
                await self._door.handler.delegations.record_event(event)

    async def _outage(self, exc: Exception, note: OutageNote, context: Any) -> None:
        """An outage met outside a handler (admitting the call): UNAVAILABLE."""
        outage = outage_of(exc)
        if outage is None:
            return
        note.outage = outage
        await self._agents.abort_context(unavailable_error(outage), context)

    async def _admit(
        self, request: Message, context: Any, held: contextlib.AsyncExitStack, *, message: bool
    ) -> GrpcHandler:
        """Authenticate, name the agent, decide (the call held open in
        ``held``); the handler that serves the call, its call context set for
        it (`_call`). Aborts the call with the refusal."""
        agent_id = await _agent_id(request, context)
        metadata = _metadata(context)
        caller = await self._caller(context, metadata, agent_id)
        note_caller(caller)  # an outage from here on is this caller's refusal
        version = await self._version(metadata, context)
        trace_id = begin_trace(metadata)
        owner = Owner(caller.subject, caller.issuer, caller)
        decided, inputs = await self._skill(
            request, context, caller, agent_id, owner, trace_id, message=message
        )
        extensions = frozenset(
            get_requested_extensions(metadata.get(HTTP_EXTENSION_HEADER.lower(), []))
        )
        try:
            admitted = await admit_call(
                self._door.handler.delegate,
                held,
                caller,
                agent_id,
                trace_id,
                owner,
                message=message,
                decided=decided,
                inputs=inputs,
                extensions=extensions,
                others=self._door.others,
                approvals=self._held is not None,
                consents=self._door.handler._parts().consents,
            )
        except Refusal as refused:
            await abort_refused(context, refused)
        # Every kind of admission says its extensions (`Admission`, `McpAdmission`).
        admission = admitted.admission
        call = admitted_context(owner.subject, ADMISSION, admission, admission.extensions, version)
        _call.set(call)
        return self._handler_for(admitted)

    async def _version(self, metadata: _Lines, context: Any) -> str | None:
        """The A2A version the caller asked for; aborts on one not served."""
        version = next(iter(metadata.getlist(VERSION_HEADER)), None)
        if version is not None and version.strip().split(".")[0] != "1":
            # This service is A2A 1.x's (§3.2.6: a version the server does not
            # speak is VersionNotSupportedError); the SDK's GrpcHandler, unlike
            # its HTTP routes, leaves the header to the handler.
            await self._agents.abort_context(
                VersionNotSupportedError(f"A2A version {version!r} is not served here; use 1.0"),
                context,
            )
        return version

    async def _skill(
        self,
        request: Message,
        context: Any,
        caller: Caller,
        agent_id: str,
        owner: Owner,
        trace_id: str,
        *,
        message: bool,
    ) -> tuple[MessageSkill, list[Any] | None]:
        """The skill a message is for, and its inputs; aborts (recorded) on a
        request the HTTP doors would refuse, or a skill named two ways."""
        delegations = self._door.handler.delegations
        decided, inputs = MessageSkill(None), None
        if (where := non_finite(request)) is not None:
            # What the HTTP doors refuse in their text (`gateway.a2a.numbers`).
            refusal = InvalidParamsError(f"{where} is not a JSON number (NaN or infinite)")
            await delegations.refused(
                caller, agent_id, event="a2a", trace_id=trace_id, reason=str(refusal)
            )
            await self._agents.abort_context(refusal, context)
        if message:
            try:
                decided, inputs = await decide_skill(
                    delegations, self._door.handler.tasks, agent_id, owner, request
                )
            except InvalidParamsError as error:
                await delegations.refused(
                    caller, agent_id, event="a2a", trace_id=trace_id, reason=str(error)
                )
                await self._agents.abort_context(error, context)
        return decided, inputs

    def _handler_for(self, admitted: Admitted) -> GrpcHandler:
        if admitted.route == "other" and self._others is not None:
            return self._others
        if admitted.route == "approval" and self._held is not None:
            return self._held
        run = self._door.gateway_run
        if self._runs is not None and run is not None and run.serves(admitted.admission.grant.card):
            return self._runs
        return self._agents

    async def _caller(self, context: Any, metadata: _Lines, agent_id: str) -> Caller:
        """The caller as the HTTP door authenticates it (`front_door_principal`):
        a token for the gateway, or one it minted for this agent's front door."""
        try:
            token = credential_of(
                metadata.getlist("authorization"), metadata.getlist(API_KEY_HEADER)
            )
        except CredentialHeaderError as exc:
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, str(exc))
            raise  # not reached: abort raises
        principal: Principal
        try:
            principal, onwards = await self._auth.verify(token), False
        except TokenInvalid as first:
            public_url = self._door.handler._parts().public_url
            try:
                if looks_like_key(token):
                    raise
                principal, onwards = await onwards_principal(
                    self._auth, token, f"{public_url}/a2a/{agent_id}"
                )
            except TokenInvalid:
                # The reason only: never the token.
                security.warning("authentication failed on gRPC %s: %s", agent_id, first)
                await context.abort(grpc.StatusCode.UNAUTHENTICATED, str(first))
                raise  # not reached: abort raises
        return Caller.delegated(principal) if onwards else Caller.user(principal)


async def _agent_id(request: Message, context: Any) -> str:
    """The agent the call names (its tenant), taken off the request; aborts
    on a malformed request or an id no agent can have."""
    if isinstance(request, Malformed):
        await context.abort(
            grpc.StatusCode.INVALID_ARGUMENT, f"not a valid request message: {request.error}"
        )
    agent_id = getattr(request, "tenant", "")
    if not agent_id:
        await context.abort(
            grpc.StatusCode.INVALID_ARGUMENT,
            "name the agent in the request's tenant, as its card's gRPC interface gives it",
        )
    if not is_agent_id(agent_id):
        # No agent has such an id, so saying so before authentication
        # tells nothing; and an unchecked tenant (gRPC has no URL-length
        # limit) would reach the logs and the audit whole.
        await context.abort(grpc.StatusCode.NOT_FOUND, "no agent has that id")
    request.ClearField("tenant")  # one agent per tenant; never forwarded (`tenants`)
    # Fields this gateway's a2a.proto does not know are not forwarded to an
    # agent: no check here has seen them.
    request.DiscardUnknownFields()
    return str(agent_id)

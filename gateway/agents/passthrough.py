"""Same-version pass-through: an A2A 1.0 `SendMessage` to a 1.0 JSON-RPC agent.

The JSON-RPC door's `SendMessage` and `SendStreamingMessage`, and the
HTTP+JSON door's `message:send` and `message:stream` (A2A 1.0 §11: the same
request, with the method in the path and the answer or error in that
binding's form, `passthrough_streams.RestFraming`) take this path; everything
else is the SDK's.

This is the hot path of the front door, and the one case where the caller and
the agent speak the same dialect, so nothing needs translating. Instead of the
SDK's full round trip (JSON -> protobuf -> handler -> protobuf -> JSON on the
client side, then the same in reverse for the answer), the request is parsed
once, checked, and its canonical JSON goes upstream; the answer likewise (see
`_envelope` for why never the raw bytes). The gateway still does everything
it does on the SDK path, in the same order:

1. admission (authenticate, decide, mint) happened before this is reached;
2. the request is validated exactly as the SDK validates it (base JSON-RPC
   envelope, `ParseDict` of the params, the proto's required fields -- a
   plain request read by per-type plans to the same effect,
   `adapters.a2a_plain_parse`); anything
   unusual -- another method, another version, a bad envelope, params that do
   not parse, an inline push config (relayed by the SDK path) -- is *not*
   handled here but left to the SDK, so every error a caller can provoke
   keeps the SDK's wording and code;
3. the ownership checks on `taskId`, `referenceTaskIds` and `contextId`; the
   skill -- the parsed request must name none but the one admitted, which is
   then written into both its metadata levels
   (`gateway.delegation.handoffs.checked_skill`), so the re-encoded request
   names exactly the skill decided -- and that skill's handoff contract;
4. the call, with the minted token and nothing else of the caller's headers,
   under the agent's circuit breaker and retried when the policy says the
   skill is idempotent (`gateway.delegation.retry`); an agent found down whose skill has
   a fallback is left to the SDK path, which hands the message over;
5. the answer is checked the way the SDK's client checks it
   (`_check_jsonrpc_response`, then `parse_lenient` into `SendMessageResponse`,
   repaired where a known deviation made it fail: `adapters.a2a_tolerance`);
   a task is recorded for its owner; an upstream error is re-encoded through
   the SDK's own mapping, as the SDK path does;
6. the audit record.

The answer returned is the agent's result in canonical form, under the
caller's own request `id`.

A `SendStreamingMessage` to an agent that streams is taken the same way up to
step 2, then is the handler's own stream (`stream_message`: checks, skill,
fallback, `Delegate.stream`), written by the door
(`gateway.agents.passthrough_streams`).
"""

from __future__ import annotations

import functools
import logging
from dataclasses import replace
from typing import Any, cast

from a2a.client.transports.jsonrpc import JsonRpcTransport
from a2a.types import SendMessageRequest, SendMessageResponse
from a2a.utils.constants import (
    VERSION_HEADER,
)
from a2a.utils.errors import A2AError
from a2a.utils.proto_utils import validate_proto_required_fields
from google.protobuf.json_format import Parse, ParseDict
from starlette.requests import Request
from starlette.responses import Response

from adapters.a2a_plain_parse import plain_parse, required_present
from adapters.operations import Operation
from gateway.agents.admission import Admission
from gateway.agents.handler import AgentHandler
from gateway.agents.jsonrpc_send import OPERATION, envelope, explained, poster, sends_plainly
from gateway.agents.passthrough_streams import OPERATION as STREAMING
from gateway.agents.passthrough_streams import Framing, RestFraming, stream_answer, streams
from gateway.connections.errors import ConnectionRequired
from gateway.delegation.delegate import (
    Sending,
    UpstreamDown,
)
from gateway.delegation.upstream_failures import UpstreamBadAnswerError

logger = logging.getLogger(__name__)


def speaks_1x(version: str | None) -> bool:
    """The SDK's rule (`validate_version`): same major version; none means 0.3."""
    if not version:
        return False
    major, _, _ = version.strip().partition(".")
    return major == "1"


class PassThrough:
    def __init__(self, handler: AgentHandler) -> None:
        self._handler = handler

    def _prepare(
        self, request: Request, admission: Admission, body: Any
    ) -> tuple[SendMessageRequest, JsonRpcTransport, str] | None:
        """The parsed params, the upstream's transport and URL -- or None when
        this request is not a plain same-version SendMessage."""
        if not isinstance(body, dict) or body.get("method") not in (OPERATION, STREAMING):
            return None
        if body["method"] == STREAMING and not streams(admission.grant.card):
            return None  # the SDK path answers with the agent's one answer
        if body.get("jsonrpc") != "2.0" or not speaks_1x(request.headers.get(VERSION_HEADER)):
            return None
        request_id = body.get("id")
        if isinstance(request_id, bool) or not isinstance(request_id, str | int | None):
            return None
        raw_params = body.get("params")
        if not isinstance(raw_params, dict):
            return None
        upstream = self._upstream(admission)
        if upstream is None:
            return None
        params = SendMessageRequest()
        if not plain_parse(raw_params, params):
            try:
                ParseDict(raw_params, params, ignore_unknown_fields=True)
            except Exception:  # the SDK path turns it into the right -32602
                return None
        checked = _checked(params)
        return None if checked is None else (checked, *upstream)

    async def _prepare_rest(
        self, request: Request, admission: Admission
    ) -> tuple[SendMessageRequest, JsonRpcTransport, str] | None:
        """As `_prepare`, for the HTTP+JSON binding's `message:send` and
        `message:stream` (A2A 1.0 §11): the body is the request, parsed as the
        SDK's REST dispatcher parses it (`Parse`, which refuses a key given twice)."""
        path = request.url.path
        if request.method != "POST" or not path.endswith(("/message:send", "/message:stream")):
            return None
        if path.endswith("/message:stream") and not streams(admission.grant.card):
            return None  # the SDK path answers with the agent's one answer
        if "tenant" in request.path_params or not speaks_1x(request.headers.get(VERSION_HEADER)):
            return None
        upstream = self._upstream(admission)
        if upstream is None:
            return None
        params = SendMessageRequest()
        body = await request.body()
        if not plain_parse(body, params):
            try:
                Parse(body, params, ignore_unknown_fields=True)
            except Exception:  # the SDK path answers it in the binding's words
                return None
        checked = _checked(params)
        return None if checked is None else (checked, *upstream)

    def _upstream(self, admission: Admission) -> tuple[JsonRpcTransport, str] | None:
        """The agent's transport and URL when it speaks A2A 1.0 JSON-RPC."""
        try:
            found = self._handler.upstreams.http_client(
                admission.agent_id, admission.grant.agent.card_digest, admission.grant.card
            )
        except ValueError:  # NoUsableInterface: the SDK path reports it
            return None
        if found is None:  # a gRPC agent
            return None
        transport, endpoint = found
        if not sends_plainly(transport, endpoint):
            return None
        assert isinstance(transport, JsonRpcTransport)
        return transport, endpoint.url

    async def __call__(
        self, request: Request, admission: Admission, body: Any, *, jsonrpc: bool = True
    ) -> Response | None:
        """The answer, in the door's binding (JSON-RPC, or HTTP+JSON when not
        ``jsonrpc``), or None to leave it to the SDK."""
        if jsonrpc:
            prepared = self._prepare(request, admission, body)
        else:
            prepared = await self._prepare_rest(request, admission)
        if prepared is None:
            return None
        params, transport, url = prepared
        request_id = body.get("id") if jsonrpc else None
        framing = Framing(request_id) if jsonrpc else RestFraming()  # the binding's form
        handler = self._handler
        if jsonrpc:
            streamed = body["method"] == STREAMING
        else:
            streamed = request.url.path.endswith("/message:stream")
        if streamed:
            return await stream_answer(handler.stream_message, admission, params, framing)
        try:
            await handler.check_message(admission, params.message)
            try:
                skill = handler.check_contract(admission, params)
            except A2AError as refusal:
                await handler.audit(admission, OPERATION, refusal, "; not called")
                return framing.refusal(refusal)
            forwarded = envelope(request_id, "params", params)
            result = await self._forward(admission, url, forwarded, skill, transport, request_id)
        except UpstreamDown as down:
            # The SDK path hands the message to the fallback (and audits both).
            request.state.admission = replace(admission, down=cast(A2AError, down.explained.error))
            return None
        except ConnectionRequired as needed:
            # The user's own token, refused by the agent (the connection ended)
            # or gone since admission: held for their consent; nothing was done.
            task = await handler.held_for_consent(admission, params, needed)
            return framing.result(SendMessageResponse(task=task))
        except A2AError as error:  # recorded by the core, or by the checks
            return framing.refusal(error)
        return framing.result(result)

    async def _forward(
        self,
        admission: Admission,
        url: str,
        body: bytes,
        skill: str | None,
        transport: JsonRpcTransport,
        request_id: Any,
    ) -> SendMessageResponse:
        """The call, through the delegation core: posted, its answer checked
        (an upstream fault, never retried), the task it names recorded
        (`gateway.agents.jsonrpc_send`)."""
        handler = self._handler
        token = handler.call_token(admission)  # minted, or the user's own (`before`)
        timeout = handler.timeout_of(admission)
        rules = handler.resilience.handoff(
            handler.delegations.policy.current, admission.agent_id, skill
        )
        agent_id = admission.agent_id
        raw = handler.upstreams.raw
        post = poster(raw, admission, token, transport, url, body, request_id, timeout)

        async def accept(result: SendMessageResponse) -> None:
            if result.HasField("task"):
                await handler.remember(admission, result.task)
            elif not result.HasField("message"):
                raise UpstreamBadAnswerError(f"agent {agent_id} answered with neither")

        sending: Sending[SendMessageResponse] = Sending(
            upstream=agent_id,
            attempt=post,
            explain=functools.partial(explained, agent_id, timeout),
            idempotent=bool(rules.idempotent),
            accept=accept,
            may_hand_off=rules.fallback is not None,
            before=token.before,
            went_with=token.went_with,
            operation=Operation.agent(agent_id, admission.grant.card, OPERATION),
        )
        async with token.refusals():
            return await handler._parts().delegate.send(
                admission.grant, f"a2a.{OPERATION}", sending
            )


def _checked(params: SendMessageRequest) -> SendMessageRequest | None:
    """The params validated as the SDK validates them, or None when the SDK
    path must answer (an error in its words, an inline push config)."""
    if not required_present(params):  # the SDK's check says what is missing
        try:
            validate_proto_required_fields(params)
        except Exception:  # the SDK path turns it into the right error
            return None
    if params.configuration.HasField("task_push_notification_config"):
        return None  # relayed by the SDK path (`AgentHandler._inline_push`)
    # The gateway serves one agent per URL and has no tenants; a caller-chosen
    # tenant must not pick another one upstream.
    params.ClearField("tenant")
    return params

"""Same-version pass-through: an A2A 1.0 `SendMessage` to a 1.0 JSON-RPC agent.

The JSON-RPC door's `SendMessage` and `SendStreamingMessage`, and the
HTTP+JSON door's `message:send` and `message:stream` (A2A 1.0 §11: the same
request, with the method in the path and the answer or error in that
binding's form, `_RestAnswers`, `RestFraming`) take this path; everything
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
   envelope, `ParseDict` of the params, the proto's required fields); anything
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
import json
import logging
from dataclasses import replace
from typing import Any, cast

from a2a.client.transports.jsonrpc import JsonRpcTransport
from a2a.extensions.common import HTTP_EXTENSION_HEADER
from a2a.server.request_handlers.response_helpers import build_error_response
from a2a.types import SendMessageRequest, SendMessageResponse
from a2a.utils.constants import (
    A2A_JSON_MEDIA_TYPE,
    PROTOCOL_VERSION_CURRENT,
    VERSION_HEADER,
    TransportProtocol,
)
from a2a.utils.error_handlers import build_rest_error_payload
from a2a.utils.errors import A2AError
from a2a.utils.proto_utils import validate_proto_required_fields
from google.protobuf.json_format import Parse, ParseDict, ParseError
from google.protobuf.message import Message as ProtoMessage
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from adapters.a2a_json import message_json
from adapters.a2a_tolerance import parse_tolerant
from adapters.http import UpstreamBadAnswer, UpstreamRefused
from adapters.operations import Operation
from gateway.agents.admission import Admission
from gateway.agents.handler import AgentHandler
from gateway.agents.passthrough_streams import OPERATION as STREAMING
from gateway.agents.passthrough_streams import Framing, RestFraming, stream_answer, streams
from gateway.agents.upstream_errors import UPSTREAM_FAILURES, outcome_of, upstream_error
from gateway.compat.a2a import jsonrpc_answer_check
from gateway.connections.errors import ConnectionRequired
from gateway.delegation.delegate import (
    BreakerOpen,
    Explained,
    Sending,
    UpstreamDown,
    UpstreamStatus,
)
from gateway.delegation.resilience import breaker_error
from gateway.delegation.upstream_failures import UpstreamBadAnswerError

logger = logging.getLogger(__name__)
# What the post can fail with that says something about the agent.
_FAILURES = (UpstreamRefused, UpstreamBadAnswer, *UPSTREAM_FAILURES)

OPERATION = "SendMessage"
# The SDK client's own answer check (gateway.compat.a2a says why unwrapped).
_sdk_check_jsonrpc_response = jsonrpc_answer_check()


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
        try:
            params = ParseDict(raw_params, SendMessageRequest(), ignore_unknown_fields=True)
        except Exception:  # the SDK path turns it into the right -32602
            return None
        checked = _checked(params)
        return None if checked is None else (checked, *upstream)

    async def _prepare_rest(
        self, request: Request, admission: Admission
    ) -> tuple[SendMessageRequest, JsonRpcTransport, str] | None:
        """As `_prepare`, for the HTTP+JSON binding's `message:send` and
        `message:stream` (A2A 1.0 §11): the body is the request, parsed as the SDK's REST dispatcher
        parses it (`Parse`, which refuses a key given twice)."""
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
        try:
            params = Parse(await request.body(), SendMessageRequest(), ignore_unknown_fields=True)
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
        if endpoint.binding != TransportProtocol.JSONRPC or endpoint.legacy:
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
        answers = _JsonRpcAnswers(request_id) if jsonrpc else _RestAnswers()
        handler = self._handler
        if jsonrpc and body["method"] == STREAMING:
            framing = Framing(request_id)
            return await stream_answer(handler.stream_message, admission, params, framing)
        if not jsonrpc and request.url.path.endswith("/message:stream"):
            framing = RestFraming()
            return await stream_answer(handler.stream_message, admission, params, framing)
        try:
            await handler.check_message(admission, params.message)
            try:
                skill = handler.check_contract(admission, params)
            except A2AError as refusal:
                await handler.audit(admission, OPERATION, refusal, "; not called")
                return answers.error(refusal)
            forwarded = _envelope(request_id, "params", params)
            result = await self._forward(admission, url, forwarded, skill, transport, request_id)
        except UpstreamDown as down:
            # The SDK path hands the message to the fallback (and audits both).
            request.state.admission = replace(admission, down=cast(A2AError, down.explained.error))
            return None
        except ConnectionRequired as needed:
            # The user's own token, refused by the agent (the connection ended)
            # or gone since admission: held for their consent; nothing was done.
            task = await handler.held_for_consent(admission, params, needed)
            return answers.result(SendMessageResponse(task=task))
        except A2AError as error:  # recorded by the core, or by the checks
            return answers.error(error)
        return answers.result(result)

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
        (an upstream fault, never retried), the task it names recorded."""
        handler = self._handler
        token = handler.call_token(admission)  # minted, or the user's own (`before`)
        headers = {
            "Content-Type": "application/json",
            VERSION_HEADER: PROTOCOL_VERSION_CURRENT,
        }
        if admission.extensions:
            headers[HTTP_EXTENSION_HEADER] = ",".join(sorted(admission.extensions))
        timeout = handler.timeout_of(admission)
        rules = handler.resilience.handoff(
            handler.delegations.policy.current, admission.agent_id, skill
        )
        agent_id = admission.agent_id

        async def post() -> SendMessageResponse:
            sent = {**headers, "Authorization": f"Bearer {token.token}"}
            answer = await handler.upstreams.raw.post(url, body, sent, timeout_seconds=timeout)
            token.answered(answer.status, answer.www_authenticate)
            if answer.status >= 500:
                raise UpstreamStatus(answer.status)
            if not 200 <= answer.status < 300:
                raise UpstreamBadAnswerError(f"agent {agent_id} answered HTTP {answer.status}")
            return self._check_answer(admission, transport, answer.body, request_id)

        async def accept(result: SendMessageResponse) -> None:
            if result.HasField("task"):
                await handler.remember(admission, result.task)
            elif not result.HasField("message"):
                raise UpstreamBadAnswerError(f"agent {agent_id} answered with neither")

        sending: Sending[SendMessageResponse] = Sending(
            upstream=agent_id,
            attempt=post,
            explain=functools.partial(_explained, agent_id, timeout),
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

    @staticmethod
    def _check_answer(
        admission: Admission, transport: JsonRpcTransport, answer: bytes, request_id: Any
    ) -> SendMessageResponse:
        agent_id = admission.agent_id
        try:
            data = json.loads(answer)
            # The SDK client's own check: an error object raises the A2A
            # error its code maps to; a non-response raises A2AClientError.
            checked = _sdk_check_jsonrpc_response(transport, data)
            if checked.get("id") != request_id:
                raise UpstreamBadAnswerError(f"agent {agent_id} answered another request id")
            result: SendMessageResponse = parse_tolerant(checked["result"], SendMessageResponse())
        except A2AError as exc:  # A2AClientError included: an invalid answer
            raise upstream_error(agent_id, exc, None) from None
        except (ValueError, RecursionError, KeyError, TypeError, ParseError) as exc:
            logger.info("agent %s sent an invalid SendMessage answer: %r", agent_id, exc)
            raise UpstreamBadAnswerError(f"agent {agent_id} sent an invalid answer") from None
        return result


def _checked(params: SendMessageRequest) -> SendMessageRequest | None:
    """The params validated as the SDK validates them, or None when the SDK
    path must answer (an error in its words, an inline push config)."""
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


class _JsonRpcAnswers:
    """A `SendMessage` answer in JSON-RPC: the result under the caller's id."""

    def __init__(self, request_id: Any) -> None:
        self.request_id = request_id

    def result(self, result: SendMessageResponse) -> Response:
        body = _envelope(self.request_id, "result", result)
        return Response(body, media_type="application/json")

    def error(self, error: A2AError) -> Response:
        return JSONResponse(build_error_response(self.request_id, error))


class _RestAnswers:
    """A `message:send` answer in HTTP+JSON, as the SDK's REST dispatcher
    writes it: the response itself, or the error payload under its status."""

    @staticmethod
    def result(result: SendMessageResponse) -> Response:
        return JSONResponse(message_json(result), media_type=A2A_JSON_MEDIA_TYPE)

    @staticmethod
    def error(error: A2AError) -> Response:
        payload = build_rest_error_payload(error)
        return JSONResponse(payload, status_code=payload["error"].get("code", 500))


def _envelope(request_id: Any, member: str, message: ProtoMessage) -> bytes:
    """A JSON-RPC envelope around the protobuf the gateway checked, re-encoded.

    Never the bytes it was parsed from: JSON parsers disagree on a key given
    twice (Python keeps the last, others the first) and protobuf's JSON parser
    accepts a field under two names (`taskId` and `task_id`). Forwarding the
    caller's document would let `"taskId": "<someone else's>", "task_id": ""`
    pass the ownership check (which sees the empty one) and continue another
    user's task on an upstream that reads only `taskId`. The canonical form of
    what was checked has one spelling of everything, and no unknown fields.
    """
    document: dict[str, Any] = {"jsonrpc": "2.0", "id": request_id}
    if member == "params":
        document["method"] = OPERATION
    document[member] = message_json(message)
    return json.dumps(document, separators=(",", ":")).encode()


def _explained(agent_id: str, timeout: float, exc: BaseException) -> Explained:
    """A failed post as the A2A error the caller gets, and its audit outcome."""
    if isinstance(exc, BreakerOpen):
        error: A2AError = breaker_error(exc)
    elif isinstance(exc, UpstreamStatus):
        error = UpstreamBadAnswerError(f"agent {agent_id} answered HTTP {exc.status}")
    elif isinstance(exc, (A2AError, UpstreamRefused, UpstreamBadAnswer, *UPSTREAM_FAILURES)):
        error = upstream_error(agent_id, exc, timeout)
    else:
        return Explained(exc, "error", f"{type(exc).__name__}: {exc}")
    return Explained(error, outcome_of(error), str(error))

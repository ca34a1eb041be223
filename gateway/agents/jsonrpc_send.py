"""`SendMessage` to an A2A 1.0 JSON-RPC agent, without the SDK's client.

The SDK's `JsonRpcTransport` sends over httpx and re-encodes the request
through `MessageToDict`; here the checked request's canonical JSON
(`envelope`) is posted over the gateway's own pool (`A2AUpstreams.raw`,
aiohttp) and the answer is checked the way the SDK's client checks it
(`_check_jsonrpc_response`, then `parse_tolerant`). Both doors' pass-through
(`gateway.agents.passthrough`) and the SDK path's `AgentHandler.message`
(the gRPC door, a flow's step, the console's playground, a fallback) send
this way, through the one `Delegate.send`; a failure reads the same either
way (`explained`).
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Callable, Coroutine
from typing import Any

from a2a.client.transports.base import ClientTransport
from a2a.client.transports.jsonrpc import JsonRpcTransport
from a2a.extensions.common import HTTP_EXTENSION_HEADER
from a2a.types import SendMessageRequest, SendMessageResponse
from a2a.utils.constants import PROTOCOL_VERSION_CURRENT, VERSION_HEADER
from a2a.utils.errors import A2AError
from google.protobuf.json_format import ParseError
from google.protobuf.message import Message as ProtoMessage

from adapters.a2a import UpstreamEndpoint
from adapters.a2a_json import message_json
from adapters.a2a_tolerance import parse_tolerant
from adapters.http import UpstreamBadAnswer, UpstreamHTTP, UpstreamRefused
from gateway.agents.admission import Admission
from gateway.agents.consents import CallToken
from gateway.agents.jsonrpc_answers import check_answer
from gateway.agents.upstream_errors import UPSTREAM_FAILURES, outcome_of, upstream_error
from gateway.delegation.delegate import BreakerOpen, Explained, UpstreamStatus
from gateway.delegation.resilience import breaker_error
from gateway.delegation.upstream_failures import UpstreamBadAnswerError

logger = logging.getLogger(__name__)

OPERATION = "SendMessage"


def sends_plainly(transport: ClientTransport, endpoint: UpstreamEndpoint) -> bool:
    """The agent speaks A2A 1.0 JSON-RPC (not 0.3, not REST, not gRPC)."""
    return isinstance(transport, JsonRpcTransport) and not endpoint.legacy


def poster(
    upstreams: UpstreamHTTP,
    admission: Admission,
    token: CallToken,
    transport: JsonRpcTransport,
    url: str,
    body: bytes,
    request_id: Any,
    timeout: float,
) -> Callable[[], Coroutine[Any, Any, SendMessageResponse]]:
    """One attempt of the call: ``body`` (an `envelope`) posted with the
    token the core got (`Sending.before`), its answer checked."""
    headers = {"Content-Type": "application/json", VERSION_HEADER: PROTOCOL_VERSION_CURRENT}
    if admission.extensions:
        headers[HTTP_EXTENSION_HEADER] = ",".join(sorted(admission.extensions))
    agent_id = admission.agent_id

    async def post() -> SendMessageResponse:
        sent = {**headers, "Authorization": f"Bearer {token.token}"}
        answer = await upstreams.post(url, body, sent, timeout_seconds=timeout)
        token.answered(answer.status, answer.www_authenticate)
        if answer.status >= 500:
            raise UpstreamStatus(answer.status)
        if not 200 <= answer.status < 300:
            raise UpstreamBadAnswerError(f"agent {agent_id} answered HTTP {answer.status}")
        return checked_answer(agent_id, transport, answer.body, request_id)

    return post


def plain_post(
    upstreams: UpstreamHTTP,
    admission: Admission,
    token: CallToken,
    transport: ClientTransport,
    endpoint: UpstreamEndpoint,
    params: SendMessageRequest,
    timeout: float,
) -> Callable[[], Coroutine[Any, Any, SendMessageResponse]]:
    """`poster` for the SDK path's `SendMessage` (``params`` checked by
    `AgentHandler.message`) to an agent that `sends_plainly`, under a request
    id of its own, as the SDK's client sends it."""
    assert isinstance(transport, JsonRpcTransport)
    request_id = str(uuid.uuid4())
    body = envelope(request_id, "params", params)
    return poster(upstreams, admission, token, transport, endpoint.url, body, request_id, timeout)


def checked_answer(
    agent_id: str, transport: JsonRpcTransport, answer: bytes, request_id: Any
) -> SendMessageResponse:
    try:
        data = json.loads(answer)
        # The SDK client's verdict: an error object raises the A2A error
        # its code maps to; a non-response raises A2AClientError.
        checked = check_answer(data)
        if checked.get("id") != request_id:
            raise UpstreamBadAnswerError(f"agent {agent_id} answered another request id")
        result: SendMessageResponse = parse_tolerant(checked["result"], SendMessageResponse())
    except A2AError as exc:  # A2AClientError included: an invalid answer
        raise upstream_error(agent_id, exc, None) from None
    except (ValueError, RecursionError, KeyError, TypeError, ParseError) as exc:
        logger.info("agent %s sent an invalid SendMessage answer: %r", agent_id, exc)
        raise UpstreamBadAnswerError(f"agent {agent_id} sent an invalid answer") from None
    return result


def envelope(request_id: Any, member: str, message: ProtoMessage) -> bytes:
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


def explained(agent_id: str, timeout: float | None, exc: BaseException) -> Explained:
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

"""The gRPC door's errors (`gateway.a2a.grpc_door`): an A2A error as a gRPC
status with an ErrorInfo, its code from the one table every door reads
(`a2a.utils.errors.A2A_ERROR_MAPPING`, where the SDK's errors and the
gateway's own are registered) corrected to A2A 1.0 §5.4; a refusal likewise;
`Retry-After` as metadata."""

from __future__ import annotations

import grpc
import grpc.aio
from a2a.server.request_handlers.grpc_handler import GrpcHandler
from a2a.utils.errors import (
    A2A_ERROR_MAPPING,
    A2A_ERROR_REASONS,
    A2AError,
    InvalidParamsError,
    PushNotificationNotSupportedError,
    UnsupportedOperationError,
    VersionNotSupportedError,
)
from a2a.utils.grpc_status import status_to_grpc
from a2a.utils.proto_utils import validation_errors_to_bad_request
from google.protobuf import any_pb2
from google.protobuf.message import Message
from google.rpc import error_details_pb2, status_pb2

from gateway.a2a.admit import Refusal
from gateway.agents.outages import (
    DependencyUnavailableError,
)
from gateway.delegation.upstream_failures import UpstreamBadAnswerError

# A2A 1.0 §5.4 "Error Code Mappings" names UNIMPLEMENTED for these three; the
# SDK's tables say FAILED_PRECONDITION (the TCK's GRPC-ERR-002 fails the SDK's
# own server on it). The gateway's door follows the specification. An
# upstream's bad answer is §5.4's InvalidAgentResponseError, INTERNAL (its
# HTTP+JSON status, 502, is registered as UNAVAILABLE for that binding).
SPEC_CODES: dict[type[A2AError], grpc.StatusCode] = {
    PushNotificationNotSupportedError: grpc.StatusCode.UNIMPLEMENTED,
    UnsupportedOperationError: grpc.StatusCode.UNIMPLEMENTED,
    VersionNotSupportedError: grpc.StatusCode.UNIMPLEMENTED,
    UpstreamBadAnswerError: grpc.StatusCode.INTERNAL,
}
# The ErrorInfo domain of an A2A error, as the SDK's gRPC handler sets it.
A2A_DOMAIN = "a2a-protocol.org"


def grpc_code(error: A2AError) -> grpc.StatusCode | None:
    """The gRPC status code of ``error`` (None: a class no table knows)."""
    kind = type(error)
    if kind in SPEC_CODES:
        return SPEC_CODES[kind]
    mapping = A2A_ERROR_MAPPING.get(kind)
    return grpc.StatusCode[mapping.grpc_status] if mapping is not None else None


# google.rpc.Code for the HTTP statuses a refusal carries (as `rest_refusal`).
_REFUSAL_CODES = {
    400: grpc.StatusCode.INVALID_ARGUMENT,
    401: grpc.StatusCode.UNAUTHENTICATED,
    403: grpc.StatusCode.PERMISSION_DENIED,
    404: grpc.StatusCode.NOT_FOUND,
    409: grpc.StatusCode.ABORTED,
    429: grpc.StatusCode.RESOURCE_EXHAUSTED,
    503: grpc.StatusCode.UNAVAILABLE,
}


class GatewayGrpcHandler(GrpcHandler):
    """The SDK's handler, aborting with the gateway's codes (`grpc_code`)
    and `Retry-After` as metadata on an outage.

    `abort_context` is the SDK's public hook for how an error is sent; what
    it builds is the SDK's own (an ErrorInfo with the error's reason, a
    BadRequest for invalid params), from its code table, which cannot be
    told of the gateway's classes or corrected to the specification."""

    async def abort_context(self, error: A2AError, context: grpc.aio.ServicerContext) -> None:
        outage = error.outage if isinstance(error, DependencyUnavailableError) else None
        if outage is not None:
            _add_trailing(context, {"retry-after": str(outage.retry_after)})
        code = grpc_code(error)
        if code is None:
            await context.abort(grpc.StatusCode.UNKNOWN, f"Unknown error type: {error}")
            return
        message = error.message if hasattr(error, "message") else str(error)
        status = status_pb2.Status(code=code.value[0], message=message)
        info = error_details_pb2.ErrorInfo(
            reason=A2A_ERROR_REASONS.get(type(error), "UNKNOWN_ERROR"), domain=A2A_DOMAIN
        )
        _add_detail(status, info)
        if isinstance(error, InvalidParamsError) and error.data and error.data.get("errors"):
            _add_detail(status, validation_errors_to_bad_request(error.data["errors"]))
        await _abort(context, status)


def _add_detail(status: status_pb2.Status, detail: Message) -> None:
    packed = any_pb2.Any()
    packed.Pack(detail)
    status.details.append(packed)


async def _abort(context: grpc.aio.ServicerContext, status: status_pb2.Status) -> None:
    """Abort with ``status`` as its rich form (`grpc-status-details-bin`),
    after the trailing metadata already set."""
    rich = status_to_grpc(status)
    present = tuple(context.trailing_metadata() or ())
    context.set_trailing_metadata(present + tuple(rich.trailing_metadata))
    await context.abort(rich.code, rich.details)


def _add_trailing(context: grpc.aio.ServicerContext, values: dict[str, str]) -> None:
    present = tuple(context.trailing_metadata() or ())
    context.set_trailing_metadata(present + tuple((k.lower(), v) for k, v in values.items()))


async def abort_refused(context: grpc.aio.ServicerContext, refused: Refusal) -> None:
    """A refusal as a gRPC status with an ErrorInfo; `Retry-After` as metadata."""
    code = _REFUSAL_CODES.get(refused.status, grpc.StatusCode.FAILED_PRECONDITION)
    status = status_pb2.Status(code=code.value[0], message=refused.message)
    if isinstance(refused.data, dict):
        info = error_details_pb2.ErrorInfo(
            reason="DELEGATION_REFUSED",
            domain="switchboard",
            metadata={str(k): str(v) for k, v in refused.data.items()},
        )
        _add_detail(status, info)
    _add_trailing(context, {k: str(v) for k, v in refused.headers.items()})
    await _abort(context, status)

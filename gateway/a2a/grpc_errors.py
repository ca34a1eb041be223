"""The gRPC door's errors (`gateway.a2a.grpc_door`): the A2A errors' status
codes as A2A 1.0 §5.4 gives them (set in the SDK's table at import), a
refusal as a gRPC status with an ErrorInfo, `Retry-After` as metadata."""

from __future__ import annotations

import grpc
import grpc.aio
from a2a.server.request_handlers.grpc_handler import GrpcHandler
from a2a.utils.errors import (
    A2AError,
    PushNotificationNotSupportedError,
    UnsupportedOperationError,
    VersionNotSupportedError,
)
from a2a.utils.grpc_status import status_to_grpc
from google.protobuf import any_pb2
from google.rpc import error_details_pb2, status_pb2

from gateway.a2a.admit import Refusal
from gateway.agents.outages import (
    DependencyUnavailableError,
)
from gateway.compat.a2a import grpc_error_codes
from gateway.delegation.upstream_failures import UpstreamTimeoutError, UpstreamUnavailableError

# A2A 1.0 §5.4 "Error Code Mappings" names UNIMPLEMENTED for these three; the
# SDK's table says FAILED_PRECONDITION (the TCK's GRPC-ERR-002 fails the SDK's
# own server on it). The gateway's door follows the specification. The table
# is the SDK's (gateway.compat.a2a), and only this process's gRPC door reads it.
_CODES = grpc_error_codes()
_CODES[PushNotificationNotSupportedError] = grpc.StatusCode.UNIMPLEMENTED
_CODES[UnsupportedOperationError] = grpc.StatusCode.UNIMPLEMENTED
_CODES[VersionNotSupportedError] = grpc.StatusCode.UNIMPLEMENTED
# What an upstream failure or an outage is in gRPC's own codes (the SDK's
# table maps them as their base classes, InternalError: INTERNAL).
_CODES[DependencyUnavailableError] = grpc.StatusCode.UNAVAILABLE
_CODES[UpstreamUnavailableError] = grpc.StatusCode.UNAVAILABLE
_CODES[UpstreamTimeoutError] = grpc.StatusCode.DEADLINE_EXCEEDED

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
    """The SDK's handler, with `Retry-After` as metadata on an outage's abort."""

    async def abort_context(self, error: A2AError, context: grpc.aio.ServicerContext) -> None:
        outage = error.outage if isinstance(error, DependencyUnavailableError) else None
        if outage is not None:
            _add_trailing(context, {"retry-after": str(outage.retry_after)})
        await super().abort_context(error, context)


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
        detail = any_pb2.Any()
        detail.Pack(info)
        status.details.append(detail)
    rich = status_to_grpc(status)
    _add_trailing(context, {k: str(v) for k, v in refused.headers.items()})
    present = tuple(context.trailing_metadata() or ())
    context.set_trailing_metadata(present + tuple(rich.trailing_metadata))
    await context.abort(rich.code, rich.details)

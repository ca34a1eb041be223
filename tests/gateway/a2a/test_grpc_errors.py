"""The gRPC door's error statuses (`gateway.a2a.grpc_errors`): each A2A
error's code from the one table every door reads, corrected to A2A 1.0
§5.4, and otherwise the very status the SDK's own handler sends (so an
a2a-sdk upgrade that changes how it sends an error fails here)."""

from __future__ import annotations

from typing import Any

import grpc
import pytest
from a2a.server.request_handlers.grpc_handler import GrpcHandler
from a2a.utils import errors as sdk_errors
from a2a.utils.errors import A2AError, InvalidParamsError

from gateway.a2a.grpc_errors import SPEC_CODES, GatewayGrpcHandler, grpc_code
from gateway.agents.outages import DependencyUnavailableError
from gateway.delegation.upstream_failures import (
    UpstreamBadAnswerError,
    UpstreamTimeoutError,
    UpstreamUnavailableError,
)
from gateway.flows.agent import BudgetSpentError


class Aborted(Exception):
    pass


class RecordingContext:
    """What a handler sets on a gRPC servicer context when it aborts."""

    def __init__(self, trailing: tuple[tuple[str, str], ...] = ()) -> None:
        self.trailing: tuple[tuple[str, Any], ...] = trailing
        self.aborted: tuple[grpc.StatusCode, str] | None = None

    def trailing_metadata(self) -> tuple[tuple[str, Any], ...]:
        return self.trailing

    def set_trailing_metadata(self, metadata: tuple[tuple[str, Any], ...]) -> None:
        self.trailing = tuple(metadata)

    async def abort(self, code: grpc.StatusCode, details: str) -> None:
        self.aborted = (code, details)
        raise Aborted


async def _sent(handler: GrpcHandler, error: A2AError) -> RecordingContext:
    context = RecordingContext((("x-before", "kept"),))
    with pytest.raises(Aborted):
        await handler.abort_context(error, context)
    return context


SDK_ERRORS = [
    kind
    for kind in sdk_errors.A2A_ERROR_MAPPING
    if kind.__module__ == sdk_errors.__name__ and kind not in SPEC_CODES
]


@pytest.mark.parametrize("kind", SDK_ERRORS, ids=lambda kind: kind.__name__)
async def test_an_sdk_error_is_sent_as_the_sdks_handler_sends_it(kind: type[A2AError]) -> None:
    error = kind("it went wrong")
    ours = await _sent(GatewayGrpcHandler(None), error)  # type: ignore[arg-type]
    sdks = await _sent(GrpcHandler(None), error)  # type: ignore[arg-type]
    assert ours.aborted == sdks.aborted and ours.aborted is not None
    assert ours.trailing == sdks.trailing
    assert ("x-before", "kept") in ours.trailing


async def test_invalid_params_carry_the_sdks_bad_request_detail() -> None:
    error = InvalidParamsError(
        "bad", data={"errors": [{"field": "message.parts", "message": "required"}]}
    )
    ours = await _sent(GatewayGrpcHandler(None), error)  # type: ignore[arg-type]
    sdks = await _sent(GrpcHandler(None), error)  # type: ignore[arg-type]
    assert ours.trailing == sdks.trailing
    assert any(key == "grpc-status-details-bin" for key, _ in ours.trailing)


@pytest.mark.parametrize(
    ("error", "code"),
    [
        # A2A 1.0 §5.4 where the SDK says FAILED_PRECONDITION.
        (sdk_errors.UnsupportedOperationError(), grpc.StatusCode.UNIMPLEMENTED),
        (sdk_errors.PushNotificationNotSupportedError(), grpc.StatusCode.UNIMPLEMENTED),
        (sdk_errors.VersionNotSupportedError(), grpc.StatusCode.UNIMPLEMENTED),
        # The gateway's own classes, registered in the one table.
        (UpstreamUnavailableError("down"), grpc.StatusCode.UNAVAILABLE),
        (UpstreamTimeoutError("slow"), grpc.StatusCode.DEADLINE_EXCEEDED),
        (UpstreamBadAnswerError("garbled"), grpc.StatusCode.INTERNAL),
        (DependencyUnavailableError("database"), grpc.StatusCode.UNAVAILABLE),
        (BudgetSpentError("spent"), grpc.StatusCode.PERMISSION_DENIED),
    ],
    ids=lambda value: type(value).__name__ if isinstance(value, A2AError) else value.name,
)
async def test_the_gateways_codes(error: A2AError, code: grpc.StatusCode) -> None:
    assert grpc_code(error) == code
    sent = await _sent(GatewayGrpcHandler(None), error)  # type: ignore[arg-type]
    assert sent.aborted is not None and sent.aborted[0] == code


async def test_a_class_no_table_knows_is_unknown() -> None:
    class Stray(A2AError):
        pass

    sent = await _sent(GatewayGrpcHandler(None), Stray("odd"))  # type: ignore[arg-type]
    assert sent.aborted == (grpc.StatusCode.UNKNOWN, "Unknown error type: odd")

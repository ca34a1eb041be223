"""The a2a-sdk JSON-RPC client's verdict on an answer, owned here.

The pass-through reads an upstream's JSON-RPC answer itself and needs the
verdict the SDK's `JsonRpcTransport` gives one: the answer if it is a
result, else the A2A error class its code maps to (`JSON_RPC_ERROR_CODE_MAP`,
public), with the `ErrorInfo` metadata as the error's data, or
`A2AClientError` for what is no JSON-RPC answer. The SDK keeps that check
private (`JsonRpcTransport._check_jsonrpc_response`, wrapped in a tracing
span that costs more than the check on the hot path), so these few lines
are the gateway's; `tests/gateway/agents/test_jsonrpc_answers.py` fails if
the SDK's check ever answers otherwise.
"""

from __future__ import annotations

from typing import Any

from a2a.client.errors import A2AClientError
from a2a.utils.errors import JSON_RPC_ERROR_CODE_MAP

# The SDK's own classes only: the gateway adds its classes to the SDK's table
# (`gateway.delegation.upstream_failures`, after the SDK client built its
# code -> class table from it), and -32603 from an agent is the SDK's
# InternalError, not one of ours.
_ERROR_BY_CODE = {
    code: error_type
    for error_type, code in JSON_RPC_ERROR_CODE_MAP.items()
    if error_type.__module__.split(".")[0] == "a2a"
}
# The detail whose metadata is the error's data (google.rpc.ErrorInfo).
_ERROR_INFO_TYPE = "type.googleapis.com/google.rpc.ErrorInfo"


def check_answer(answer: Any) -> dict[str, Any]:
    """``answer``, a JSON-RPC success response; raises anything else as the SDK does."""
    if not isinstance(answer, dict):
        raise A2AClientError(
            f"Invalid JSON-RPC response: expected an object, got {type(answer).__name__}"
        )
    error = answer.get("error")
    if error:
        if not isinstance(error, dict):
            raise A2AClientError(f"Invalid JSON-RPC response: error is not an object: {error!r}")
        raise _error(error)
    if "result" not in answer:
        raise A2AClientError("Invalid JSON-RPC response: it has neither 'result' nor 'error'")
    return answer


def _error(error: dict[str, Any]) -> Exception:
    code = error.get("code")
    message = error.get("message", str(error))
    details = error.get("data")
    data: dict[str, Any] | None = None
    if isinstance(details, list):
        for detail in details:
            if isinstance(detail, dict) and detail.get("@type") == _ERROR_INFO_TYPE:
                data = detail.get("metadata") or None
                break
    if isinstance(code, int) and code in _ERROR_BY_CODE:
        raised: Exception = _ERROR_BY_CODE[code](message, data=data)
        return raised
    return A2AClientError(f"JSON-RPC Error {code}: {message}")

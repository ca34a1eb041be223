"""The a2a-sdk private names `gateway.compat.a2a` touches are where it
expects them and do what the gateway relies on: each test fails if an
upgrade of the a2a-sdk moves or changes one."""

from __future__ import annotations

import grpc
import httpx
import pytest
from a2a.client.transports.jsonrpc import JsonRpcTransport
from a2a.types import AgentCard
from a2a.utils.errors import InternalError, InvalidParamsError, TaskNotFoundError

from gateway.compat import a2a as compat
from registry.tls import client_tls


def test_the_grpc_handler_reads_its_codes_from_the_table_we_add_to() -> None:
    from a2a.server.request_handlers import grpc_handler

    table = compat.grpc_error_codes()
    assert table is grpc_handler._ERROR_CODE_MAP  # the very table, not a copy
    assert table[TaskNotFoundError] == grpc.StatusCode.NOT_FOUND
    assert table[InternalError] == grpc.StatusCode.INTERNAL


def test_the_gateways_own_codes_are_in_the_sdks_table() -> None:
    import gateway.a2a.grpc_door  # noqa: F401 -- adds the door's codes at import
    from gateway.delegation.upstream_failures import UpstreamTimeoutError

    assert compat.grpc_error_codes()[UpstreamTimeoutError] == grpc.StatusCode.DEADLINE_EXCEEDED


async def test_the_jsonrpc_answer_check_returns_a_result_and_raises_an_error() -> None:
    check = compat.jsonrpc_answer_check()
    assert not hasattr(check, "__wrapped__")  # the check itself, no span around it
    async with httpx.AsyncClient(verify=client_tls()) as http:
        transport = JsonRpcTransport(http, AgentCard(name="agent"), "http://127.0.0.1:9/a2a")
        result = {"jsonrpc": "2.0", "id": 1, "result": {"ok": True}}
        assert check(transport, result)["result"] == {"ok": True}
        error = {"code": -32602, "message": "bad"}
        with pytest.raises(InvalidParamsError):
            check(transport, {"jsonrpc": "2.0", "id": 1, "error": error})

"""The a2a-sdk private names `gateway.compat.a2a` touches are where it
expects them and do what the gateway relies on: each test fails if an
upgrade of the a2a-sdk moves or changes one."""

from __future__ import annotations

import grpc
from a2a.utils.errors import InternalError, TaskNotFoundError

from gateway.compat import a2a as compat


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

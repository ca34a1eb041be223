"""The gateway's own A2A error classes (`gateway.delegation.upstream_failures`)
are in every table of the SDK that is keyed by error class, with their base
class's values and only the HTTP+JSON status changed: an SDK upgrade that
adds a table fails here, not as a wrong code in production."""

from __future__ import annotations

import importlib
import pkgutil
import sys
from typing import Any

import a2a
import pytest
from a2a.utils.errors import A2A_ERROR_MAPPING, JSON_RPC_ERROR_CODE_MAP

from gateway.delegation.upstream_failures import (
    SDK_CLASS,
    UpstreamBadAnswerError,
    UpstreamTimeoutError,
    UpstreamUnavailableError,
)


def _sdk_tables() -> list[tuple[str, dict[Any, Any]]]:
    for info in pkgutil.walk_packages(a2a.__path__, "a2a."):
        try:
            importlib.import_module(info.name)
        except Exception:  # noqa: S112 - optional extras (gRPC tooling, databases)
            continue
    tables = []
    for name, module in list(sys.modules.items()):
        if not name.startswith("a2a."):
            continue
        for attribute, value in vars(module).items():
            if isinstance(value, dict) and any(key in SDK_CLASS.values() for key in value):
                tables.append((f"{name}.{attribute}", value))
    return tables


# The SDK gRPC handler's private code table: the gateway's gRPC door does
# not let the SDK read it (`gateway.a2a.grpc_errors.GatewayGrpcHandler`
# sends every error itself; tests/gateway/a2a/test_grpc_errors.py), nor
# serves the 0.3 gRPC binding, whose handler imports the same table.
NOT_READ = {
    "a2a.server.request_handlers.grpc_handler._ERROR_CODE_MAP",
    "a2a.compat.v0_3.grpc_handler._ERROR_CODE_MAP",
}


def test_every_class_keyed_table_of_the_sdk_knows_ours() -> None:
    tables = [(name, table) for name, table in _sdk_tables() if name not in NOT_READ]
    assert len(tables) >= 3, [name for name, _ in tables]
    for name, table in tables:
        for ours, base in SDK_CLASS.items():
            if base in table:
                assert ours in table, f"{name} lacks {ours.__name__}"


def test_no_table_of_the_sdk_reads_an_error_back_as_ours() -> None:
    # Code -> class and name -> class tables, built by the SDK's clients when
    # imported: an agent's -32603 must stay InternalError.
    _sdk_tables()
    for name, module in list(sys.modules.items()):
        if not name.startswith("a2a."):
            continue
        for attribute, value in vars(module).items():
            if isinstance(value, dict):
                wrong = [k for k, v in value.items() if isinstance(v, type) and v in SDK_CLASS]
                assert not wrong, f"{name}.{attribute} reads {wrong} as ours"


@pytest.mark.parametrize(
    ("error", "status", "code"),
    [
        (UpstreamUnavailableError, 503, -32603),
        (UpstreamTimeoutError, 504, -32603),
        (UpstreamBadAnswerError, 502, -32006),
    ],
)
def test_what_each_class_answers(error: type[Any], status: int, code: int) -> None:
    assert A2A_ERROR_MAPPING[error].http_code == status
    assert JSON_RPC_ERROR_CODE_MAP[error] == code
    base = SDK_CLASS[error]
    assert A2A_ERROR_MAPPING[error].reason == A2A_ERROR_MAPPING[base].reason

"""gateway.storage.outages and the "unavailable" answers built on it
(A2A: gateway.agents.outages; MCP: gateway.mcp.errors)."""

from __future__ import annotations

import pytest
from a2a.server.request_handlers.response_helpers import build_error_response
from a2a.utils.error_handlers import build_rest_error_payload
from redis.exceptions import ConnectionError as RedisConnectionError
from sqlalchemy.exc import IntegrityError, OperationalError

from gateway.agents.outages import DEPENDENCY_UNAVAILABLE, unavailable_error
from gateway.mcp.errors import unavailable
from gateway.storage.outages import DependencyUnavailable, outage_of


def _database_down() -> OperationalError:
    return OperationalError("SELECT 1", {}, ConnectionRefusedError(111, "Connection refused"))


def test_a_lost_database_is_an_outage() -> None:
    outage = outage_of(_database_down())
    assert outage is not None and outage.dependency == "database"
    assert "SELECT" not in str(outage)  # the statement never reaches a caller
    assert outage.retry_after == 5


def test_redis_and_a_bare_connection_failure_are_outages() -> None:
    redis = outage_of(RedisConnectionError("Connection refused"))
    assert redis is not None and redis.dependency == "redis"
    refused = outage_of(ConnectionRefusedError(111, "refused"))
    assert refused is not None and refused.dependency == "database"


def test_a_refused_row_or_a_bug_is_not_an_outage() -> None:
    assert outage_of(IntegrityError("INSERT", {}, ValueError("duplicate key"))) is None
    assert outage_of(ValueError("nope")) is None
    assert outage_of(KeyError("x")) is None


def test_an_outage_is_found_behind_what_it_caused() -> None:
    def wrapped() -> None:
        try:
            raise _database_down()
        except OperationalError as exc:
            raise RuntimeError("while recording") from exc

    with pytest.raises(RuntimeError) as raised:
        wrapped()
    outage = outage_of(raised.value)
    assert outage is not None and outage.dependency == "database"

    def hidden() -> None:
        try:
            raise _database_down()
        except OperationalError:
            raise ValueError("a different matter") from None

    with pytest.raises(ValueError, match="different") as raised_hidden:
        hidden()
    assert outage_of(raised_hidden.value) is None


def test_the_a2a_answer_in_both_bindings() -> None:
    error = unavailable_error(DependencyUnavailable("database", "ConnectionRefusedError"))
    rpc = build_error_response(7, error)
    assert rpc["id"] == 7 and rpc["error"]["code"] == DEPENDENCY_UNAVAILABLE
    (info,) = rpc["error"]["data"]
    assert info["reason"] == "DEPENDENCY_UNAVAILABLE"
    assert info["metadata"] == {"dependency": "database", "retryAfterSeconds": "5"}
    rest = build_rest_error_payload(error)["error"]
    assert (rest["code"], rest["status"]) == (503, "UNAVAILABLE")
    assert rest["details"] == rpc["error"]["data"]


def test_the_mcp_answer() -> None:
    error = unavailable(DependencyUnavailable("redis"))
    assert error.error.code == DEPENDENCY_UNAVAILABLE
    assert error.error.data == {"dependency": "redis", "retryAfterSeconds": 5}
    assert "try again in 5 s" in error.error.message

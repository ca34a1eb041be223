"""The audit log's JSON Lines export refuses a bad request with a problem
document before its 200 starts, on SQLite and PostgreSQL.

The REST fuzzer found `GET /audit?cursor=&format=jsonl` answered 200 and then
cut off mid-stream (the bad cursor was only read once the stream had begun),
which a client sees as a broken connection, not as its own mistake.
"""

from __future__ import annotations

import pytest

from gateway.http.problems import PROBLEM_JSON
from tests.support.gateway import Gateway, GatewayFactory


@pytest.fixture
def gateway(make_gateway: GatewayFactory, database_url: str | None) -> Gateway:
    return make_gateway(database_url)


@pytest.mark.parametrize("cursor", ["", "x", "99999999999999999999"])
def test_a_bad_cursor_is_a_problem_before_the_stream(gateway: Gateway, cursor: str) -> None:
    with gateway.client() as admin:
        answer = admin.get("/audit", params={"format": "jsonl", "cursor": cursor})
    assert answer.status_code == 400, answer.text
    assert answer.headers["content-type"] == PROBLEM_JSON


def test_a_nul_filter_is_a_problem_before_the_stream(
    gateway: Gateway, database_url: str | None
) -> None:
    with gateway.client() as admin:
        answer = admin.get("/audit", params={"format": "jsonl", "agent": "a\x00"})
    if database_url is None:  # SQLite stores NUL: nothing matches
        assert (answer.status_code, answer.content) == (200, b"")
    else:
        assert answer.status_code == 422, answer.text
        assert answer.headers["content-type"] == PROBLEM_JSON


def test_an_export_streams_every_record(gateway: Gateway) -> None:
    with gateway.client() as admin:
        for _ in range(3):  # refused calls are audited too
            admin.post("/a2a/nobody", json={"jsonrpc": "2.0", "id": 1, "method": "GetTask"})
        listed = admin.get("/audit").json()["items"]
        lines = admin.get("/audit", params={"format": "jsonl"}).text.splitlines()
    assert len(lines) == len(listed)


@pytest.mark.parametrize("trace", ["", "xyz", "A" * 32, "0" * 33, "0" * 31])
def test_a_malformed_trace_filter_is_a_problem(gateway: Gateway, trace: str) -> None:
    with gateway.client() as admin:
        for params in ({"trace": trace}, {"trace": trace, "format": "jsonl"}):
            answer = admin.get("/audit", params=params)
            assert answer.status_code == 422, answer.text
            assert answer.headers["content-type"] == PROBLEM_JSON
            assert "trace" in answer.text
        # A well-formed trace that matches nothing is an empty page, not an error.
        empty = admin.get("/audit", params={"trace": "0" * 32})
        assert empty.status_code == 200 and empty.json()["items"] == []


@pytest.mark.parametrize("misspelt", ["trace_id", "subject", "agent_id", "formats"])
def test_a_parameter_that_is_no_filter_is_refused_not_dropped(
    gateway: Gateway, misspelt: str
) -> None:
    """A misspelt filter would otherwise answer the whole log as if filtered."""
    with gateway.client() as admin:
        admin.post("/a2a/nobody", json={"jsonrpc": "2.0", "id": 1, "method": "GetTask"})
        for extra in ({}, {"format": "jsonl"}):
            answer = admin.get("/audit", params={misspelt: "0" * 32, **extra})
            assert answer.status_code == 422, answer.text
            assert answer.headers["content-type"] == PROBLEM_JSON
            assert misspelt in answer.text
        assert admin.get("/audit", params={"format": "json"}).status_code == 200

"""A NUL character (U+0000) in what a caller sends is the caller's problem,
on SQLite (which stores it) and on PostgreSQL (which cannot): never a 5xx.

The REST fuzzer found PostgreSQL's refusal of it ("invalid byte sequence for
encoding UTF8: 0x00") answered as 503 "database unavailable", telling
clients and load balancers to retry a request that can never succeed.
"""

from __future__ import annotations

import pytest

from gateway.http.problems import PROBLEM_JSON
from tests.support.gateway import Gateway, GatewayFactory


@pytest.fixture
def gateway(make_gateway: GatewayFactory, database_url: str | None) -> Gateway:
    return make_gateway(database_url)


@pytest.mark.parametrize(
    ("path", "params"),
    [
        ("/agents", {"tag": "a\x00b"}),
        ("/agents", {"q": "\x00"}),
        ("/approvals", {"agent": "\x00"}),
        ("/audit", {"agent": "\x00"}),
        ("/agents/a%00b", None),
        ("/mcp-servers/a%00", None),
    ],
)
def test_a_nul_in_a_filter_or_an_id_is_never_a_5xx(
    gateway: Gateway, database_url: str | None, path: str, params: dict[str, str] | None
) -> None:
    with gateway.client() as admin:
        answer = admin.get(path, params=params)
    assert answer.status_code < 500, answer.text
    if answer.status_code >= 400:
        assert answer.headers["content-type"] == PROBLEM_JSON
    if database_url is not None and answer.status_code == 422:
        problem = answer.json()
        assert problem["type"] == "urn:switchboard:problem:invalid-character"
        assert "NUL" in problem["detail"]

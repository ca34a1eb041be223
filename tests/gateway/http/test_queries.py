"""Query parameters read as the OpenAPI document says (`gateway.http.queries`):
a date and time is never a number, and no parameter is given twice -- each a
422 problem naming the parameter, on a small app of its own and on the
gateway's own routes (found by the REST fuzzer: ``GET /usage?since=9432120``
answered for April 1970, and a repeated ``subject`` for its last value)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import pytest
from fastapi import Depends, FastAPI, Query
from fastapi.testclient import TestClient

from gateway.app import create_app
from gateway.delegation.dev_tokens import issue_dev_token
from gateway.http.problems import install_error_handlers
from gateway.http.queries import IsoDatetime, single_valued_query
from gateway.settings import Settings
from policies.scopes import ADMIN_SCOPE


@pytest.fixture
def small() -> TestClient:
    app = FastAPI(dependencies=[Depends(single_valued_query)])
    install_error_handlers(app)

    @app.get("/things")
    async def things(
        since: Annotated[IsoDatetime | None, Query()] = None, name: str | None = None
    ) -> dict[str, Any]:
        return {"since": since.isoformat() if since else None, "name": name}

    return TestClient(app)


def _refused(answer: Any, field: str) -> None:
    assert answer.status_code == 422, answer.text
    assert answer.headers["content-type"].startswith("application/problem+json")
    body = answer.json()
    assert body["type"] == "urn:switchboard:problem:invalid-request"
    assert [e["field"] for e in body["errors"]] == [field], body


@pytest.mark.parametrize("number", ["9432120", "-5", "1.5", " 42 ", ".5"])
def test_a_number_is_not_a_date_and_time(small: TestClient, number: str) -> None:
    _refused(small.get("/things", params={"since": number}), "query.since")


@pytest.mark.parametrize(
    ("given", "read"),
    [
        ("2026-11-27T09:30:00Z", "2026-11-27T09:30:00+00:00"),
        ("2026-11-27T09:30:00+01:00", "2026-11-27T09:30:00+01:00"),
        ("2026-11-27", "2026-11-27T00:00:00"),
    ],
)
def test_iso_8601_is_read_as_before(small: TestClient, given: str, read: str) -> None:
    answer = small.get("/things", params={"since": given})
    assert answer.status_code == 200, answer.text
    assert datetime.fromisoformat(answer.json()["since"]) == datetime.fromisoformat(read)


def test_a_parameter_given_twice_is_refused_not_read_as_its_last(small: TestClient) -> None:
    _refused(small.get("/things?name=a&name=b"), "query.name")
    _refused(
        small.get("/things?since=2026-11-27T00:00:00Z&since=2026-11-28T00:00:00Z"), "query.since"
    )
    assert small.get("/things?name=a&since=2026-11-27").json()["name"] == "a"


@pytest.fixture
def gateway(tmp_path: Path) -> Iterator[tuple[TestClient, dict[str, str]]]:
    settings = Settings(dev=True, data_dir=tmp_path)
    token = issue_dev_token(settings, "admin", frozenset({ADMIN_SCOPE}), 600)
    with TestClient(create_app(settings)) as client:
        yield client, {"Authorization": f"Bearer {token}"}


def test_the_gateways_own_routes_refuse_both(gateway: tuple[TestClient, dict[str, str]]) -> None:
    client, admin = gateway
    for path in ("/usage", "/runs", "/audit"):
        _refused(client.get(path, params={"since": "9432120"}, headers=admin), "query.since")
        assert client.get(path, params={"since": "2026-11-27T00:00:00Z"}, headers=admin).is_success
    _refused(client.get("/audit", params={"until": "12"}, headers=admin), "query.until")
    _refused(client.get("/usage?subject=a&subject=b&issuer=x", headers=admin), "query.subject")
    _refused(client.get("/agents?q=a&q=b", headers=admin), "query.q")

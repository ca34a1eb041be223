"""How the API answers a database error (`gateway.http.problems`): a value the
database cannot hold (SQLSTATE class 22, "data exception") is the caller's
fault, 422 with a problem document -- not a 500 and not an outage -- while a
database that is gone is a 503 with Retry-After. A unit test of the handler,
on a FastAPI app of its own, because the API's own validation leaves no
route that reaches a class 22 error today (the fuzzers look for one)."""

from __future__ import annotations

import asyncpg
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy.exc import DBAPIError

from gateway.http.problems import install_error_handlers


def _app(error: BaseException) -> TestClient:
    app = FastAPI()
    install_error_handlers(app)

    @app.get("/boom")
    async def boom() -> None:
        raise DBAPIError("SELECT 1", {}, error)

    return TestClient(app, raise_server_exceptions=False)


@pytest.mark.parametrize(
    ("error", "sqlstate"),
    [
        (asyncpg.NumericValueOutOfRangeError("value out of range"), "22003"),
        (asyncpg.InvalidTextRepresentationError("invalid input syntax"), "22P02"),
        (asyncpg.DatetimeFieldOverflowError("date/time field value out of range"), "22008"),
    ],
)
def test_a_data_exception_is_the_callers_422(error: BaseException, sqlstate: str) -> None:
    answer = _app(error).get("/boom")
    assert answer.status_code == 422
    assert answer.headers["content-type"] == "application/problem+json"
    problem = answer.json()
    assert problem["type"] == "urn:switchboard:problem:invalid-value"
    assert sqlstate in problem["detail"]


def test_a_lost_connection_is_still_an_outage() -> None:
    answer = _app(ConnectionRefusedError("connection refused")).get("/boom")
    assert answer.status_code == 503
    assert answer.headers["retry-after"]

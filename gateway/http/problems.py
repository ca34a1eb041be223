"""Every error leaves the REST API as an RFC 9457 problem document.

Domain exceptions from `registry` and `policies` are mapped here, at the
boundary, so routers stay thin and no stack trace ever reaches a caller.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeout
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import JSONResponse
from starlette.routing import Match

from gateway.storage.outages import DependencyUnavailable, outage_of
from registry.cards import CardInvalid
from registry.contracts import ContractInvalid
from registry.fetch import FetchFailed, FetchRefused
from registry.service import SignatureRefused
from registry.store import AgentConflict, AgentNotFound, InvalidCursor

logger = logging.getLogger(__name__)
PROBLEM_JSON = "application/problem+json"


class Problem(Exception):
    def __init__(
        self,
        status: int,
        slug: str,
        title: str,
        detail: str | None = None,
        *,
        errors: Sequence[Mapping[str, Any]] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(detail or title)
        self.status = status
        self.slug = slug
        self.title = title
        self.detail = detail
        self.errors = errors
        self.headers = dict(headers or {})


def problem_response(problem: Problem, instance: str | None = None) -> JSONResponse:
    body: dict[str, Any] = {
        "type": f"urn:switchboard:problem:{problem.slug}",
        "title": problem.title,
        "status": problem.status,
    }
    if problem.detail:
        body["detail"] = problem.detail
    if instance:
        body["instance"] = instance
    if problem.errors:
        body["errors"] = list(problem.errors)
    return JSONResponse(
        body, status_code=problem.status, headers=problem.headers, media_type=PROBLEM_JSON
    )


# An exception a subsystem raises, and the problem it becomes: status, type slug, title.
ProblemMapping = tuple[type[Exception], int, str, str]


# The registry's own exceptions (`registry`), as problems with their text as detail.
_REGISTRY_PROBLEMS: tuple[ProblemMapping, ...] = (
    (FetchRefused, 422, "url-refused", "URL refused by the SSRF policy"),
    (FetchFailed, 502, "card-fetch-failed", "Could not fetch the agent card"),
    (SignatureRefused, 422, "invalid-signature", "The agent card signature is invalid"),
    (
        AgentConflict,
        409,
        "agent-exists",
        "An agent with this id, card URL or resource already exists",
    ),
    (AgentNotFound, 404, "agent-not-found", "No such agent"),
    (InvalidCursor, 400, "invalid-cursor", "Invalid cursor"),
)


def install_error_handlers(app: FastAPI, mappings: Iterable[ProblemMapping] = ()) -> None:
    """Every handler of the REST API; ``mappings`` are the subsystems' own
    exceptions (e.g. `gateway.api.mcp_servers.PROBLEMS`), each turned into a
    problem with the exception's text as its detail."""
    app.add_exception_handler(Problem, _handler(lambda e: e))
    app.add_exception_handler(RequestValidationError, _handler(_validation_problem))
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(CardInvalid, _handler(_card_problem))
    app.add_exception_handler(ContractInvalid, _handler(_contract_problem))
    for exc_type, status, slug, title in (*_REGISTRY_PROBLEMS, *mappings):
        app.add_exception_handler(
            exc_type,
            _handler(lambda e, s=status, g=slug, t=title: Problem(s, g, t, str(e))),
        )
    app.add_exception_handler(
        RecursionError,
        _handler(lambda e: Problem(400, "too-deep", "The JSON document is nested too deeply")),
    )
    for outage in (
        DBAPIError,
        PoolTimeout,
        ConnectionError,
        DependencyUnavailable,
        RedisConnectionError,
        RedisTimeout,
    ):
        app.add_exception_handler(outage, _database_error)
    app.add_exception_handler(Exception, _unexpected)


def _handler(convert: Any) -> Any:
    """An exception handler answering the problem ``convert`` makes of the exception."""

    async def handle(request: Request, exc: Exception) -> JSONResponse:
        return problem_response(convert(exc), request.url.path)

    return handle


def unavailable_problem(outage: DependencyUnavailable) -> Problem:
    """The problem every HTTP door answers a dependency outage with: 503,
    `Retry-After`, and which dependency (``<dependency>-unavailable``)."""
    return Problem(
        503,
        f"{outage.dependency}-unavailable",
        f"The {outage.dependency} is unavailable",
        f"try again in {outage.retry_after} s",
        headers={"Retry-After": str(outage.retry_after)},
    )


async def _database_error(request: Request, exc: Exception) -> JSONResponse:
    """A dependency went away (or refused us): 503, so clients and load
    balancers retry; a constraint or programming error stays a 500. A text
    the caller sent that PostgreSQL cannot hold (a NUL character: SQLSTATE
    22021, which SQLite stores) is the caller's: 422."""
    state = _sqlstate(exc)
    if state == UNREPRESENTABLE_CHARACTER:
        problem = Problem(
            422,
            "invalid-character",
            "The request holds a character the database cannot store",
            "text values may not contain NUL (U+0000)",
        )
        return problem_response(problem, request.url.path)
    if state is not None and state.startswith(DATA_EXCEPTION_CLASS):
        # Class 22, "data exception" (a number out of range, a value of the
        # wrong form): a value the request carried that the database cannot
        # hold. The request's fault, not an outage nor ours: 422, and logged,
        # since the API's own validation should have caught it first.
        logger.warning("data exception %s on %s %s", state, request.method, request.url.path)
        problem = Problem(
            422,
            "invalid-value",
            "The request holds a value the database cannot store",
            f"a value is out of range or of the wrong form (SQLSTATE {state})",
        )
        return problem_response(problem, request.url.path)
    outage = outage_of(exc)
    if outage is None:
        return await _unexpected(request, exc)
    logger.error("%s on %s %s", outage, request.method, request.url.path)
    return problem_response(unavailable_problem(outage), request.url.path)


# PostgreSQL's character_not_in_repertoire: "invalid byte sequence for encoding UTF8: 0x00".
UNREPRESENTABLE_CHARACTER = "22021"
DATA_EXCEPTION_CLASS = "22"


def _sqlstate(exc: Exception) -> str | None:
    """The SQLSTATE of a driver error (asyncpg's, under SQLAlchemy's wrapper)."""
    seen: BaseException | None = getattr(exc, "orig", None)
    while seen is not None:
        code = getattr(seen, "sqlstate", None) or getattr(seen, "pgcode", None)
        if isinstance(code, str):
            return code
        seen = seen.__cause__
    return None


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    logger.exception("unhandled error on %s %s", request.method, request.url.path)
    return problem_response(Problem(500, "internal", "Internal error"), request.url.path)


def _validation_problem(exc: RequestValidationError) -> Problem:
    errors = list(exc.errors())
    if any(e.get("type") == "json_invalid" for e in errors):
        return Problem(400, "malformed-json", "The request body is not valid JSON")
    return Problem(
        422,
        "invalid-request",
        "The request does not match the expected shape",
        errors=[
            {"field": ".".join(str(p) for p in e.get("loc", ())), "message": str(e.get("msg", ""))}
            for e in errors
        ],
    )


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    slug = {404: "not-found", 405: "method-not-allowed"}.get(exc.status_code, "http-error")
    headers = dict(exc.headers or {})
    if exc.status_code == 405:
        headers["Allow"] = _allowed_methods(request)
    problem = Problem(exc.status_code, slug, str(exc.detail), headers=headers)
    return problem_response(problem, request.url.path)


_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


def _allowed_methods(request: Request) -> str:
    """RFC 9110 §15.5.6: a 405 lists every method the resource supports.
    Starlette's lists only those of the first route whose path matched, and
    one path is often several routes (GET and DELETE /agents/{id})."""
    routes = request.app.router.routes
    return ", ".join(
        method
        for method in _METHODS
        if any(
            route.matches({**request.scope, "method": method})[0] == Match.FULL for route in routes
        )
    )


def _card_problem(exc: CardInvalid) -> Problem:
    return Problem(
        422,
        "invalid-card",
        "The agent card is invalid",
        str(exc),
        errors=[{"field": e.field, "message": e.message} for e in exc.errors],
    )


def _contract_problem(exc: ContractInvalid) -> Problem:
    return Problem(
        422,
        "invalid-contract",
        "A skill contract is not a usable JSON Schema",
        str(exc),
        errors=[
            {"field": f"skill_contracts.{skill}", "message": reason}
            for skill, reason in exc.problems
        ],
    )

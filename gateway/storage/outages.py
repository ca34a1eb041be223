"""Telling a dependency outage (the database or Redis went away) from a bug.

Every door answers an outage the same way (docs/operations.md, "Failures and
what callers see"): 503 with `Retry-After` over HTTP, the protocol's
"unavailable" error over JSON-RPC. This module only decides *whether* an
exception is an outage and of what; each door encodes the answer.
"""

from __future__ import annotations

import sqlite3

from sqlalchemy.exc import (
    DataError,
    DBAPIError,
    IntegrityError,
    ProgrammingError,
)
from sqlalchemy.exc import (
    TimeoutError as PoolTimeout,
)

_SQLITE_REFUSALS = (sqlite3.IntegrityError, sqlite3.DataError, sqlite3.ProgrammingError)
# What every "unavailable" answer tells a client to wait before trying again.
RETRY_AFTER_SECONDS = 5
DATABASE = "database"
REDIS = "redis"


class DependencyUnavailable(Exception):
    """A dependency the request needs is down; the caller should retry later."""

    def __init__(self, dependency: str, detail: str = "") -> None:
        super().__init__(f"the {dependency} is unavailable" + (f": {detail}" if detail else ""))
        self.dependency = dependency
        self.retry_after = RETRY_AFTER_SECONDS


def outage_of(exc: BaseException) -> DependencyUnavailable | None:
    """The outage ``exc`` is (walking its causes), or None if it is something else.

    A constraint, data or programming error is the request's or the code's
    fault, not an outage: it stays an error. Redis is recognised by its
    client's exception types, imported lazily (the module is optional here).
    """
    seen = 0
    cause: BaseException | None = exc
    while cause is not None and seen < 8:
        if isinstance(cause, DependencyUnavailable):
            return cause
        if isinstance(cause, IntegrityError | DataError | ProgrammingError):
            return None
        if isinstance(cause, DBAPIError):
            if data_refused(cause):
                return None
            return DependencyUnavailable(DATABASE, type(cause.orig or cause).__name__)
        if isinstance(cause, sqlite3.Error) and not isinstance(cause, _SQLITE_REFUSALS):
            # `gateway.storage.statements` runs SQLite directly: its errors
            # are read as SQLAlchemy's wrapping of them is, above.
            return DependencyUnavailable(DATABASE, type(cause).__name__)
        if isinstance(cause, PoolTimeout):
            return DependencyUnavailable(DATABASE, "no connection in time")
        if _is_redis_outage(cause):
            return DependencyUnavailable(REDIS, type(cause).__name__)
        if isinstance(cause, ConnectionError) and seen == 0:
            # A bare OS-level failure reaching the database (asyncpg may raise
            # ConnectionRefusedError before SQLAlchemy wraps anything).
            return DependencyUnavailable(DATABASE, type(cause).__name__)
        # The explicit cause, else the exception being handled when this one
        # was raised (unless it was deliberately hidden with `from None`).
        cause = cause.__cause__ or (None if cause.__suppress_context__ else cause.__context__)
        seen += 1
    return None


def data_refused(exc: DBAPIError) -> bool:
    """The database refused the data itself (SQLSTATE class 22 data exception or
    23 integrity violation), as opposed to being unreachable. SQLAlchemy's
    asyncpg dialect raises these as a plain `DBAPIError` (not `DataError`):
    a string too long for its column, a NUL byte in text on PostgreSQL."""
    if isinstance(exc, IntegrityError | DataError):
        return True
    orig = exc.orig
    sqlstate = getattr(orig, "sqlstate", None) or getattr(
        getattr(orig, "__cause__", None), "sqlstate", None
    )
    return isinstance(sqlstate, str) and sqlstate[:2] in ("22", "23")


def _is_redis_outage(exc: BaseException) -> bool:
    try:
        from redis.exceptions import ConnectionError as RedisConnectionError
        from redis.exceptions import TimeoutError as RedisTimeout
    except ImportError:  # pragma: no cover - redis is a dependency
        return False
    return isinstance(exc, RedisConnectionError | RedisTimeout)

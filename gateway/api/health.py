"""Liveness and readiness probes."""

from __future__ import annotations

from fastapi import APIRouter, Request
from sqlalchemy.exc import SQLAlchemyError

from gateway.api.state import state_of
from gateway.http.problems import Problem
from gateway.storage.db import ping

router = APIRouter(tags=["health"])


@router.get("/healthz", summary="Liveness: the process answers")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz", summary="Readiness: the database answers")
async def readyz(request: Request) -> dict[str, str]:
    try:
        await ping(state_of(request).engine)
    except (SQLAlchemyError, OSError) as exc:
        raise Problem(503, "not-ready", "Database unreachable", type(exc).__name__) from None
    return {"status": "ready", "database": "ok"}

"""Liveness and readiness probes."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from gateway.api.state import state_of
from gateway.http.problems import PROBLEM_JSON
from gateway.storage.outages import RETRY_AFTER_SECONDS
from gateway.storage.readiness import OK

router = APIRouter(tags=["health"])


@router.get("/healthz", summary="Liveness: the process answers")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get(
    "/readyz",
    summary="Readiness: every dependency answers (the database; Redis when configured)",
)
async def readyz(request: Request) -> JSONResponse:
    """200 when every dependency answers; else 503, a problem document whose
    ``checks`` say which one is down (each is "ok" or "unavailable: <why>")."""
    checks = await state_of(request).readiness.check()
    down = sorted(name for name, state in checks.items() if state != OK)
    body: dict[str, Any]
    if not down:
        return JSONResponse({"status": "ready", "checks": checks, **checks})
    body = {
        "type": "urn:switchboard:problem:not-ready",
        "title": "Not ready: " + ", ".join(down) + (" is" if len(down) == 1 else " are") + " down",
        "status": 503,
        "instance": request.url.path,
        "checks": checks,
    }
    return JSONResponse(
        body,
        status_code=503,
        media_type=PROBLEM_JSON,
        headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
    )

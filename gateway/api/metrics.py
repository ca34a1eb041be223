"""`GET /metrics`: Prometheus' text format (`gateway.observability.metrics`).

An admin token by default; open with `metrics_public` (for a scraper inside
the cluster that cannot hold a token), or served on a port of its own with
`metrics_port` (then only there, without a token: bind it where only the
scraper reaches).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Request, Response, Security
from fastapi.security import HTTPAuthorizationCredentials

from gateway.api.state import state_of
from gateway.http.auth import BEARER, admin_principal, current_principal
from gateway.http.problems import Problem
from gateway.observability.metrics import CONTENT_TYPE

router = APIRouter(tags=["operations"])


@router.get("/metrics", summary="Prometheus metrics", response_class=Response)
async def metrics(
    request: Request,
    # Documents the default (an admin's bearer token) in the OpenAPI document;
    # whether one is needed is decided below, from the settings.
    _documented: Annotated[HTTPAuthorizationCredentials | None, Security(BEARER)] = None,
) -> Response:
    state = state_of(request)
    settings = state.settings
    if settings.metrics_port is not None:
        raise Problem(404, "not-found", "Not found", "metrics are served on their own port")
    if not settings.metrics_public:
        await admin_principal(request, await current_principal(request))
    return Response(state.metrics.render(), media_type=CONTENT_TYPE)

"""Route order: the A2A front and `/mcp` come first (the hot paths should not be
matched against every REST route first), which is safe only while no other
route matches their paths."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from starlette.routing import Match

from gateway.app import create_app
from gateway.mcp.auth import MCP_PATH
from gateway.settings import Settings


def _matching(app: Any, path: str, method: str) -> list[int]:
    scope = {"type": "http", "path": path, "method": method, "root_path": ""}
    return [i for i, route in enumerate(app.router.routes) if route.matches(scope)[0] != Match.NONE]


def test_mcp_is_matched_early_and_by_one_route_only(tmp_path: Path) -> None:
    app = create_app(Settings(dev=True, data_dir=str(tmp_path)))
    (first_rest,) = _matching(app, "/healthz", "GET")  # the first REST router's
    for method in ("POST", "GET", "DELETE"):
        hits = _matching(app, MCP_PATH, method)
        assert len(hits) == 1, method
        assert hits[0] < first_rest, "the MCP route should come before the REST routers"

"""The web console at `/ui` (issue 21): server-rendered pages (Jinja2), no
third-party script or style, usable without JavaScript and on a narrow screen.

It sits above the REST API (`gateway.api`) and below `gateway.app`: every page
reads through the API's own route functions and services, so a user sees in
the console exactly what the API would show them, decided by the same
functions. One module per page; `web.py` holds what they share (session,
CSRF, security headers, rendering), `login.py` logging in and out,
`sessions.py` the sessions in the database, `oidc.py` the OpenID Connect
client, `apidocs.py` the offline `/docs`. docs/console.md says how to use it.
"""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from gateway.agents.startup import Agents
from gateway.console import (
    agents,
    api_keys,
    approvals,
    audit,
    connections,
    credentials,
    flows,
    holds,
    login,
    mcp_servers,
    mcp_sets,
    overview,
    playground,
    policy,
    run_live,
    runs,
    time_travel,
    vendor_agents,
)
from gateway.console.web import PREFIX, Console
from gateway.settings import Settings


def install(app: FastAPI, settings: Settings, handlers: Agents) -> None:
    """Serve the console (unless `console.enabled` is off); ``handlers``: those
    the playground reaches agents through, as the doors do."""
    if not settings.console.enabled:
        return
    app.state.console = Console(settings)
    app.state.console_agents = handlers
    for router in (
        login.router,
        overview.router,
        agents.router,
        vendor_agents.router,
        credentials.router,
        mcp_sets.router,
        mcp_servers.router,
        flows.router,
        time_travel.router,
        run_live.router,
        runs.router,
        approvals.router,
        connections.router,
        api_keys.router,
        playground.router,
        holds.router,
        audit.router,
        policy.router,
    ):
        app.include_router(router)
    app.mount(
        PREFIX + "/static",
        StaticFiles(packages=[("gateway.console", "static")]),
        name="console-static",
    )

"""A pytest plugin for the A2A TCK: `Authorization: Bearer <token>` on every
request it sends to the gateway, which requires one.

    SWITCHBOARD_TCK_TOKEN=... SWITCHBOARD_TCK_ORIGIN=http://127.0.0.1:PORT \\
        run_tck.py ... -- -p conformance.tck_auth

The TCK's documented `A2A_AUTH_*` variables are no longer read on its 1.0-dev
branch, and a header proxy (as `conformance.header_proxy` is for the MCP
suite) would not do: the TCK reads the interface URLs from the gateway's card,
which name the gateway, not the proxy. Every request the TCK makes over HTTP
goes through `httpx.Client.send` (its JSON-RPC and HTTP+JSON clients, and the
raw `httpx.post`/`get` calls of its tests), so that is where the header goes,
only for requests to ``SWITCHBOARD_TCK_ORIGIN`` and never over one the test
set itself. Runs in the TCK's own virtualenv: httpx and pytest only.
"""

from __future__ import annotations

import os
from typing import Any

import httpx
import pytest


def pytest_configure(config: pytest.Config) -> None:
    token = os.environ.get("SWITCHBOARD_TCK_TOKEN")
    origin = os.environ.get("SWITCHBOARD_TCK_ORIGIN")
    if not token or not origin:
        return
    send = httpx.Client.send

    def send_with_token(self: httpx.Client, request: httpx.Request, **kwargs: Any) -> Any:
        if str(request.url).startswith(origin) and "authorization" not in request.headers:
            request.headers["Authorization"] = f"Bearer {token}"
        return send(self, request, **kwargs)

    setattr(httpx.Client, "send", send_with_token)  # noqa: B010 -- mypy: assigning to a method

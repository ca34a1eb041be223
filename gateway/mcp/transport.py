"""How `/mcp` is served over HTTP: the SDK's session manager, resumable
streams for 2025-11-25 sessions (`gateway.mcp.events`), sessions routed to
the replica that holds them (`gateway.mcp.replicas`), the 2026-07-28 fast
path (`gateway.mcp.fastpath`), and the two routes -- `/mcp` and a virtual
server's `/mcp/{name}` -- in front of them (`McpFront.routes`)."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

from mcp.server import Server
from mcp.server.streamable_http_manager import (
    StreamableHTTPASGIApp,
    StreamableHTTPSessionManager,
)
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp

from gateway.http.jsonrpc_ids import KeepRequestId
from gateway.mcp.auth import MCP_PATH, McpAuth
from gateway.mcp.events import MemoryEventStore, SessionBinding
from gateway.mcp.fastpath import McpFastPath, sdk_matches
from gateway.mcp.replicas import SessionRouting
from gateway.mcp.sets import SessionPaths, SetCache, SetScope
from gateway.mcp.transport_settings import transport_security
from gateway.settings import Settings
from gateway.storage.replicas import ReplicaDirectory

logger = logging.getLogger(__name__)


class McpTransport:
    """The session manager around the SDK ``server``, and the routes to it."""

    def __init__(
        self,
        server: Server[Any],
        settings: Settings,
        replicas: ReplicaDirectory | None,
        sets: Callable[[], SetCache | None],
    ) -> None:
        self._sets = sets
        # Resumable SSE streams for 2025-11-25 sessions (gateway.mcp.events).
        self.events = (
            MemoryEventStore(
                max_events_per_stream=settings.mcp_resume_max_events_per_stream,
                max_events=settings.mcp_resume_max_events,
                max_bytes=settings.mcp_resume_max_bytes,
                max_events_per_owner=settings.mcp_resume_max_events_per_user,
                max_bytes_per_owner=settings.mcp_resume_max_bytes_per_user,
                idle_seconds=settings.mcp_session_idle_seconds,
            )
            if settings.mcp_resumable
            else None
        )
        # 2025-11-25 sessions served whichever replica a request lands on.
        self.replicas = replicas if settings.mcp_session_routing else None
        self._routing: SessionRouting | None = None
        self._fast_path = settings.mcp_fast_path and sdk_matches()
        if settings.mcp_fast_path and not self._fast_path:
            logger.warning("mcp_fast_path: not the mcp SDK it mirrors; /mcp takes the SDK's path")
        self._max_body = settings.max_request_bytes
        self.manager = StreamableHTTPSessionManager(
            app=server,
            event_store=self.events,
            retry_interval=settings.mcp_sse_retry_ms if self.events is not None else None,
            # SSE answers, not JSON: with JSON a 2026-07-28 call can neither
            # report progress nor be cancelled (the SDK answers plain JSON
            # anyway when a handler finishes quickly and silently).
            json_response=False,
            stateless=False,  # 2025-11-25 sessions, so list_changed can reach them
            security_settings=transport_security(settings),
            session_idle_timeout=settings.mcp_session_idle_seconds,
            max_request_body_size=settings.max_request_bytes,
        )

    def routes(self) -> list[BaseRoute]:
        # One exact route (GET for the 2025 stream, POST, DELETE to end a
        # session): a Mount would redirect `/mcp` to `/mcp/`.
        app: ASGIApp = StreamableHTTPASGIApp(self.manager)
        if self._fast_path:
            app = McpFastPath(self.manager, self._max_body)
        if self.events is not None:
            app = SessionBinding(app, self.events)  # after McpAuth: the caller is known
        if self.replicas is not None:
            # Outside the binding: it and the SDK see the SDK's own session ids.
            app = self._routing = SessionRouting(app, self.replicas)
        # The SDK's envelope refusals answer "id": null; the caller's id goes
        # back whenever it could be read (JSON-RPC 2.0 section 5).
        # A 2025-11-25 session answers only where it was opened (`/mcp` or a set's).
        app = SessionPaths(app)
        return [
            Route(MCP_PATH, endpoint=McpAuth(KeepRequestId(app))),
            # Virtual servers: the same endpoint, offering one set (`gateway.mcp.sets`).
            Route(
                MCP_PATH + "/{set_name}",
                endpoint=McpAuth(SetScope(KeepRequestId(app), self._sets)),
            ),
        ]

    @contextlib.asynccontextmanager
    async def run(self) -> AsyncIterator[None]:
        """The session manager, for the app's whole life (`McpFront.run`); the
        session routing closes last, before the manager stops."""
        async with self.manager.run():
            try:
                yield
            finally:
                if self._routing is not None:
                    await self._routing.aclose()

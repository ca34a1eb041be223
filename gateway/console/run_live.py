"""The run page, live: `GET /ui/flows/{id}/runs/{run}/live` is a stream of
server-sent events (text/event-stream) that the page's own script
(`static/live.js`) follows. Each ``run`` event carries the run's state and
the page's changing parts rendered again (the state line; the graph, steps
and input/output), sent only when they changed; once the run has ended the
stream sends its last and closes, and the script stops listening.

The stream reads the run as the page does (the logged-in user's own run,
an admin's any; redacted as everywhere) every `POLL_SECONDS`, from the
database: a run may be walked on another replica, so a change is seen
wherever it was made. A stream lasts at most `STREAM_SECONDS`; the browser's
EventSource connects again by itself, and the session is checked anew."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator

from fastapi import APIRouter, Request, Response
from fastapi.responses import StreamingResponse

from gateway.api import flows as flows_api
from gateway.console.run_view import ENDED, digest, fragments
from gateway.console.sessions import ConsoleUser
from gateway.console.web import PREFIX, ConsoleRoute, LoginRequired, current_user

router = APIRouter(prefix=PREFIX + "/flows", route_class=ConsoleRoute, include_in_schema=False)

POLL_SECONDS = 0.5
STREAM_SECONDS = 300.0
SESSION_CHECK_SECONDS = 10.0
# Live pages open at once in this process: each reads its run twice a second.
MAX_STREAMS = 64
_OPEN = 0


@router.get("/{flow_id}/runs/{run_id}/live")
async def live(request: Request, flow_id: str, run_id: str, seen: str = "") -> Response:
    """``seen``: the digest of what the page shows (`run_view.digest`): not sent again."""
    user = await current_user(request)
    await flows_api.get_run(request, flow_id, run_id, user.principal())  # 404: not theirs
    if _OPEN >= MAX_STREAMS:
        # The page still works: reloaded by hand, or its script tries again later.
        return Response("too many live pages open", status_code=429, headers={"Retry-After": "30"})

    async def events() -> AsyncIterator[str]:
        # Counted once it streams: a stream never started (its client gone
        # first) never runs this, and so never leaves the count behind.
        global _OPEN
        _OPEN += 1
        try:
            async for event in _events(request, user, flow_id, run_id, seen[:64]):
                yield event
        finally:
            _OPEN -= 1

    return StreamingResponse(
        events(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


async def _events(
    request: Request, user: ConsoleUser, flow_id: str, run_id: str, sent: str
) -> AsyncIterator[str]:
    ends = time.monotonic() + STREAM_SECONDS
    checked = time.monotonic()
    # The browser waits this long before connecting again (SSE `retry`).
    yield "retry: 2000\n\n"
    while True:
        if time.monotonic() - checked > SESSION_CHECK_SECONDS:
            checked = time.monotonic()
            try:
                await current_user(request)  # logged out, or expired: the stream ends
            except LoginRequired:
                return
        run = await flows_api.get_run(request, flow_id, run_id, user.principal())
        now = await fragments(request, user, run)
        if digest(now) != sent:
            yield f"event: run\ndata: {json.dumps(now)}\n\n"
            sent = digest(now)
        if run.state in ENDED or time.monotonic() > ends:
            return
        if await request.is_disconnected():
            return
        await asyncio.sleep(POLL_SECONDS)

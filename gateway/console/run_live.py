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
from gateway.console.web import PREFIX, ConsoleRoute, current_user

router = APIRouter(prefix=PREFIX + "/flows", route_class=ConsoleRoute, include_in_schema=False)

POLL_SECONDS = 0.5
STREAM_SECONDS = 300.0


@router.get("/{flow_id}/runs/{run_id}/live")
async def live(request: Request, flow_id: str, run_id: str, seen: str = "") -> Response:
    """``seen``: the digest of what the page shows (`run_view.digest`): not sent again."""
    user = await current_user(request)
    await flows_api.get_run(request, flow_id, run_id, user.principal())  # 404: not theirs

    async def events() -> AsyncIterator[str]:
        sent = seen[:64]
        ends = time.monotonic() + STREAM_SECONDS
        # The browser waits this long before connecting again (SSE `retry`).
        yield "retry: 2000\n\n"
        while True:
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

    return StreamingResponse(
        events(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )

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
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import StreamingResponse

from gateway.api import flows as flows_api
from gateway.console.flows import ENDED, timeline
from gateway.console.run_graph import run_graph
from gateway.console.sessions import ConsoleUser
from gateway.console.web import PREFIX, ConsoleRoute, console_of, current_user
from gateway.flows.models import RunView

router = APIRouter(prefix=PREFIX + "/flows", route_class=ConsoleRoute, include_in_schema=False)

POLL_SECONDS = 0.5
STREAM_SECONDS = 300.0


async def fragments(request: Request, user: ConsoleUser, run: RunView) -> dict[str, Any]:
    templates = console_of(request).templates
    context = {"user": user, "run": run, "bars": timeline(run)}
    context["graph"] = await run_graph(request, run)
    return {
        "state": run.state,
        "head": templates.get_template("flow_run_state.html").render(**context),
        "live": templates.get_template("flow_run_live.html").render(**context),
    }


@router.get("/{flow_id}/runs/{run_id}/live")
async def live(request: Request, flow_id: str, run_id: str) -> Response:
    user = await current_user(request)
    await flows_api.get_run(request, flow_id, run_id, user.principal())  # 404: not theirs

    async def events() -> AsyncIterator[str]:
        sent: dict[str, Any] | None = None
        ends = time.monotonic() + STREAM_SECONDS
        # The browser waits this long before connecting again (SSE `retry`).
        yield "retry: 2000\n\n"
        while True:
            run = await flows_api.get_run(request, flow_id, run_id, user.principal())
            now = await fragments(request, user, run)
            if now != sent:
                yield f"event: run\ndata: {json.dumps(now)}\n\n"
                sent = now
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

"""An A2A 1.0 agent that streams its answer in chunks and stops half-way
until told to go on: a few lines of Starlette.

`SendStreamingMessage` answers the task (submitted), working, then the
artifact ``answer`` in ``FIRST`` chunks ("c0", "c1", ...; each after the
first appended), then waits for `ChunkAgent.release`, then sends one more
chunk and completed. `GetTask` answers the task as it stands: every chunk
sent so far in its artifact (what an a2a-sdk agent's task store holds).
"""

from __future__ import annotations

import json
import threading
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import anyio
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route
from starlette.types import ASGIApp

from tests.support.servers import ServerThread

FIRST = 3
TASK_ID, CONTEXT_ID = "chunk-task", "chunk-context"
_IDS = {"taskId": TASK_ID, "contextId": CONTEXT_ID}


def _card(url: str) -> dict[str, Any]:
    interface = {"url": url + "/", "protocolBinding": "JSONRPC", "protocolVersion": "1.0"}
    return {
        "name": "Chunks",
        "description": "Streams its answer in chunks.",
        "version": "1.0.0",
        "supportedInterfaces": [interface],
        "capabilities": {"streaming": True},
        "defaultInputModes": ["text/plain"],
        "defaultOutputModes": ["text/plain"],
        "skills": [{"id": "chat", "name": "Chat", "description": "Talks.", "tags": ["chat"]}],
    }


@dataclass
class ChunkAgent:
    release: threading.Event = field(default_factory=threading.Event)
    sent: list[str] = field(default_factory=list)
    state: str = "TASK_STATE_SUBMITTED"
    server: ServerThread | None = None

    def task(self) -> dict[str, Any]:
        parts = [{"text": text} for text in self.sent]
        task: dict[str, Any] = {"id": TASK_ID, "contextId": CONTEXT_ID}
        task["status"] = {"state": self.state}
        if parts:
            task["artifacts"] = [{"artifactId": "answer", "parts": parts}]
        return task

    def _chunk(self) -> dict[str, Any]:
        text = f"c{len(self.sent)}"
        self.sent.append(text)
        artifact = {"artifactId": "answer", "parts": [{"text": text}]}
        return {"artifactUpdate": {**_IDS, "artifact": artifact, "append": len(self.sent) > 1}}

    def _status(self, state: str) -> dict[str, Any]:
        self.state = state
        return {"statusUpdate": {**_IDS, "status": {"state": state}}}

    async def _events(self) -> AsyncIterator[dict[str, Any]]:
        yield {"task": self.task()}
        yield self._status("TASK_STATE_WORKING")
        for _ in range(FIRST):
            yield self._chunk()
        await anyio.to_thread.run_sync(self.release.wait, abandon_on_cancel=True)
        yield self._chunk()
        yield self._status("TASK_STATE_COMPLETED")

    def build(self, url: str) -> ASGIApp:
        async def card(_: Request) -> Response:
            return JSONResponse(_card(url))

        async def rpc(request: Request) -> Response:
            body = await request.json()
            rid = body.get("id")
            if body.get("method") == "GetTask":
                return JSONResponse({"jsonrpc": "2.0", "id": rid, "result": self.task()})

            async def stream() -> AsyncIterator[str]:
                async for event in self._events():
                    answer = {"jsonrpc": "2.0", "id": rid, "result": event}
                    yield f"event: message\ndata: {json.dumps(answer)}\n\n"

            return StreamingResponse(stream(), media_type="text/event-stream")

        routes = [
            Route("/.well-known/agent-card.json", card),
            Route("/", rpc, methods=["POST"]),
        ]
        return Starlette(routes=routes)

    def start(self) -> ChunkAgent:
        self.server = ServerThread(self.build).start()
        return self

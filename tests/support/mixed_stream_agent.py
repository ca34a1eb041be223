"""An A2A agent whose card says 1.0 but whose stream events after the first are
in 0.3's layout, as LangGraph's server (langgraph-api 0.16.7) sends them
(docs/interop.md): a few lines of Starlette replaying the wire shape.

Its `SendStreamingMessage` answers a 1.0 task (submitted), then, in the
dialect it was made with:

* ``langgraph``: what langgraph-api sent (recorded 2026-11-25): 0.3's layout
  (the event object told by `kind`, `final`, parts tagged with `kind`) with
  1.0's enum values (`TASK_STATE_WORKING`, `ROLE_AGENT`);
* ``0.3``: the same events in true 0.3 (`working`, `agent`), the artifact
  with a 0.3 file part besides its text;
* ``neither``: a working update, then an event of a kind no A2A version has;
* ``malformed``: 1.0's layout, the artifact chunk's `lastChunk` a string
  where ProtoJSON requires a bool.

The events after the first: working (with the agent's message), the artifact
"<prefix> <user text>", completed. Every request is recorded (`Recorder`).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route
from starlette.types import ASGIApp

from tests.support.inspecting import Recorder
from tests.support.servers import ServerThread

SAYS = "mixed says:"
FILE_URL = "https://files.example/answer.txt"


def _card(url: str) -> dict[str, Any]:
    interface = {"url": url + "/", "protocolBinding": "JSONRPC", "protocolVersion": "1.0"}
    return {
        "name": "Mixed",
        "description": "A 1.0 card; stream events after the first in 0.3's layout.",
        "version": "1.0.0",
        "supportedInterfaces": [interface],
        "capabilities": {"streaming": True},
        "defaultInputModes": ["text/plain"],
        "defaultOutputModes": ["text/plain"],
        "skills": [{"id": "chat", "name": "Chat", "description": "Talks.", "tags": ["chat"]}],
    }


def _events(dialect: str, text: str) -> list[dict[str, Any]]:
    task_id, context_id = "mixed-task", "mixed-context"
    ids = {"taskId": task_id, "contextId": context_id}
    v03 = dialect == "0.3"
    states = ("working", "completed") if v03 else ("TASK_STATE_WORKING", "TASK_STATE_COMPLETED")
    working, completed = states
    answer = f"{SAYS} {text}"
    said = {
        "kind": "message",
        "role": "agent" if v03 else "ROLE_AGENT",
        "parts": [{"kind": "text", "text": answer}],
        "messageId": "mixed-message",
        **ids,
    }
    parts: list[dict[str, Any]] = [{"kind": "text", "text": answer}]
    if v03:
        parts.append({"kind": "file", "file": {"uri": FILE_URL, "mimeType": "text/plain"}})
    first = {
        "task": {
            "id": task_id,
            "contextId": context_id,
            "status": {"state": "TASK_STATE_SUBMITTED"},
        }
    }
    later = [
        {
            **ids,
            "kind": "status-update",
            "status": {"state": working, "message": said},
            "final": False,
        },
        {
            **ids,
            "kind": "artifact-update",
            "artifact": {"artifactId": "a-1", "parts": parts},
            "lastChunk": True,
        },
        {**ids, "kind": "status-update", "status": {"state": completed}, "final": True},
    ]
    if dialect == "neither":
        later[1] = {**ids, "kind": "progress", "percent": 50}
    if dialect == "malformed":
        chunk = {"artifactId": "a-1", "parts": [{"text": answer}]}
        later = [
            {"statusUpdate": {**ids, "status": {"state": working}}},
            {"artifactUpdate": {**ids, "artifact": chunk, "lastChunk": "yes"}},
            {"statusUpdate": {**ids, "status": {"state": completed}}},
        ]
    return [first, *later]


def mixed_stream_agent(dialect: str, recorder: Recorder | None = None) -> ServerThread:
    recorder = recorder or Recorder()

    def build(url: str) -> ASGIApp:
        async def card(_: Request) -> Response:
            return JSONResponse(_card(url))

        async def rpc(request: Request) -> Response:
            body = await request.json()
            if body.get("method") != "SendStreamingMessage":
                error = {"code": -32601, "message": "only SendStreamingMessage here"}
                return JSONResponse({"jsonrpc": "2.0", "id": body.get("id"), "error": error})
            parts = body["params"]["message"].get("parts", [])
            text = "".join(p.get("text", "") for p in parts)

            async def stream() -> AsyncIterator[str]:
                for event in _events(dialect, text):
                    answer = {"jsonrpc": "2.0", "id": body.get("id"), "result": event}
                    yield f"event: message\ndata: {json.dumps(answer)}\n\n"

            return StreamingResponse(stream(), media_type="text/event-stream")

        routes = [
            Route("/.well-known/agent-card.json", card),
            Route("/", rpc, methods=["POST"]),
        ]
        return recorder.middleware(Starlette(routes=routes))

    return ServerThread(build).start()

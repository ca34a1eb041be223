"""Agno A2A server (AgentOS with a2a_interface=True) with a deterministic fake model.

Usage: server.py PORT SEEN_FILE  -> serves an AgentOS on http://127.0.0.1:PORT/,
appending one JSON line per HTTP request to SEEN_FILE.

One shim in front of Agno, RouteByMethod (docs/interop.md; AGNO_NO_SHIM=1
turns it off to reproduce the bug): Agno's card names its streaming route as
the agent's URL, and that route answers only `message/stream` -- every other
method sent there is refused with HTTP 400. The shim sends each JSON-RPC
method to Agno's route for it (and aliases the card at the root). Agno's card
writes null for every unset field, which the gateway reads as "not given".

Agno's A2A interface is not at the root; for the agent id "agno-echo":
  card:    GET  /a2a/agents/agno-echo/.well-known/agent-card.json   (A2A 0.3 card, a2a-sdk 0.3.x)
  send:    POST /a2a/agents/agno-echo/v1/message:send    (JSON-RPC body, method "message/send")
  stream:  POST /a2a/agents/agno-echo/v1/message:stream  (JSON-RPC body, method "message/stream"; the card's `url`)
  get:     POST /a2a/agents/agno-echo/v1/tasks:get       (needs params.contextId and a db)
  cancel:  POST /a2a/agents/agno-echo/v1/tasks:cancel
"""

from __future__ import annotations

import os
import sys
import warnings

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(1, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # seen.py
os.environ.setdefault("OTEL_SDK_DISABLED", "true")
os.environ.setdefault("AGNO_TELEMETRY", "false")
warnings.filterwarnings("ignore")

import json  # noqa: E402
import re  # noqa: E402

import uvicorn  # noqa: E402
from agno.agent import Agent  # noqa: E402
from agno.db.in_memory import InMemoryDb  # noqa: E402
from agno.os import AgentOS  # noqa: E402
from fake_model import EchoModel  # noqa: E402
from seen import SeenMiddleware  # noqa: E402

AGENT_ID = "agno-echo"


# JSON-RPC method -> the Agno route that accepts it (each route accepts only its own).
_ROUTES = {
    "message/send": "message:send",
    "message/stream": "message:stream",
    "tasks/get": "tasks:get",
    "tasks/cancel": "tasks:cancel",
}
ROOT_CARDS = ("/.well-known/agent-card.json", "/.well-known/agent.json")
_V1 = re.compile(r"^(/a2a/agents/[^/]+/v1/)[^/]+$")


class RouteByMethod:
    """Sends each JSON-RPC POST to the Agno route for its method.

    Agno's card gives one ``url`` (its ``message:stream`` route), as A2A 0.3
    requires, but serves each method on a route of its own, each accepting only
    that method: a client following the card (the gateway) gets HTTP 400 for
    anything but ``message/stream``. Agno's ``tasks:get`` also requires
    ``params.contextId``, which A2A's ``tasks/get`` does not carry: the shim
    remembers each task's context from the answers and fills it in.
    It also serves the agent's card at the root, where Agno serves none.
    AGNO_NO_SHIM=1 turns this off (to reproduce the 400s).
    """

    def __init__(self, app):
        self.app, self.contexts = app, {}

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http" and scope["path"] in ROOT_CARDS:
            # No card at the root: serve the agent's there too (the matrix registers the root URL).
            path = f"/a2a/agents/{AGENT_ID}/.well-known/agent-card.json"
            await self.app({**scope, "path": path, "raw_path": path.encode()}, receive, send)
            return
        match = _V1.match(scope.get("path", "")) if scope["type"] == "http" else None
        if match is None or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        chunks = []
        while True:
            message = await receive()
            chunks.append(message.get("body", b""))
            if message["type"] != "http.request" or not message.get("more_body", False):
                break
        body = b"".join(chunks)
        try:
            rpc = json.loads(body)
            route = _ROUTES.get(rpc.get("method"))
            params = rpc.get("params") or {}
            if rpc.get("method") in ("tasks/get", "tasks/cancel") and "contextId" not in params:
                context = self.contexts.get(params.get("id"))
                if context:
                    rpc["params"] = {**params, "contextId": context}
                    body = json.dumps(rpc).encode()
        except (ValueError, AttributeError):
            route = None
        if route:
            path = match.group(1) + route
            scope = {**scope, "path": path, "raw_path": path.encode()}
        sent = False

        async def replay():
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        async def remember(message):
            if message["type"] == "http.response.body":
                self._remember(message.get("body", b""))
            await send(message)

        await self.app(
            {**scope, "headers": _with_length(scope["headers"], len(body))}, replay, remember
        )

    def _remember(self, chunk):
        for line in chunk.decode("utf-8", "replace").splitlines():
            line = line.removeprefix("data:").strip()
            try:
                result = json.loads(line).get("result") or {}
            except (ValueError, AttributeError):
                continue
            task_id = result.get("taskId") or (
                result.get("id") if result.get("kind") == "task" else None
            )
            if task_id and result.get("contextId"):
                self.contexts[task_id] = result["contextId"]


def _with_length(headers, length):
    kept = [(k, v) for k, v in headers if k.lower() != b"content-length"]
    return [*kept, (b"content-length", str(length).encode())]


def main() -> None:
    port, seen_file = int(sys.argv[1]), sys.argv[2]
    agent = Agent(
        id=AGENT_ID,
        name="agno-echo",
        description="Deterministic Agno echo agent",
        model=EchoModel(),
        db=InMemoryDb(),  # tasks:get reads runs back from the agent's db
        telemetry=False,
    )
    agent_os = AgentOS(
        id="interop", agents=[agent], a2a_interface=True, telemetry=False, auto_provision_dbs=False
    )
    app = agent_os.get_app()
    if os.environ.get("AGNO_NO_SHIM") != "1":
        app = RouteByMethod(app)
    app = SeenMiddleware(app, seen_file)
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")


if __name__ == "__main__":
    main()

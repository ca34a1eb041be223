"""A mock A2A agent for unit tests, in the spirit of `httpx.MockTransport`.

`MockAgent` answers A2A 1.0 JSON-RPC (A2A 1.0 §9: ``SendMessage``,
``SendStreamingMessage``, ``GetTask``, ``CancelTask``) as an httpx handler,
so the official SDK's own client transport (`MockAgent.transport`) talks to
it with no server and no socket. Each request is kept (`MockAgent.seen`:
method, params, headers -- what a test asserts the gateway sent), and
answers are scripted in order (`MockAgent.then`); with nothing scripted a
message is echoed, a task read back as it stands, a task cancelled.

For unit tests of one piece (the delegation core, an adapter's mapping of
failures) only: end-to-end tests keep real SDK agents on 127.0.0.1
(`tests.support.a2a_agents`).
"""

from __future__ import annotations

import json
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
from a2a.client.transports.jsonrpc import JsonRpcTransport
from a2a.types import (
    AgentCapabilities,
    AgentCard,
    Artifact,
    Message,
    Part,
    Role,
    SendMessageResponse,
    StreamResponse,
    Task,
    TaskState,
    TaskStatus,
    TaskStatusUpdateEvent,
)
from a2a.utils.constants import PROTOCOL_VERSION_CURRENT, TransportProtocol
from google.protobuf.json_format import MessageToDict, ParseDict

URL = "http://agent.test/a2a"
# JSON-RPC error codes of A2A 1.0 §9.5 used by the default answers.
TASK_NOT_FOUND = -32001
TASK_NOT_CANCELABLE = -32002


@dataclass(frozen=True)
class Seen:
    """One request as the agent received it."""

    method: str
    params: dict[str, Any]
    headers: httpx.Headers


# A scripted answer: given the request's JSON-RPC id and params, the response
# (or raise, as a transport failure would).
Reply = Callable[[Any, dict[str, Any]], httpx.Response]


def _result(rpc_id: Any, result: dict[str, Any]) -> httpx.Response:
    return httpx.Response(200, json={"jsonrpc": "2.0", "id": rpc_id, "result": result})


def _error(rpc_id: Any, code: int, message: str) -> httpx.Response:
    return httpx.Response(
        200, json={"jsonrpc": "2.0", "id": rpc_id, "error": {"code": code, "message": message}}
    )


def text_message(text: str, role: Role = Role.ROLE_AGENT) -> Message:
    return Message(message_id=uuid.uuid4().hex, role=role, parts=[Part(text=text)])


def a_task(state: TaskState, text: str = "", *, artifact: str | None = None) -> Task:
    task = Task(id=uuid.uuid4().hex, context_id=uuid.uuid4().hex)
    task.status.CopyFrom(TaskStatus(state=state))
    if text:
        task.status.message.CopyFrom(text_message(text))
    if artifact is not None:
        task.artifacts.append(Artifact(artifact_id="result", parts=[Part(text=artifact)]))
    return task


@dataclass
class MockAgent:
    """An A2A agent as an httpx handler: see the module's docstring."""

    url: str = URL
    streaming: bool = False
    seen: list[Seen] = field(default_factory=list)
    tasks: dict[str, Task] = field(default_factory=dict)
    _script: deque[Reply] = field(default_factory=deque)

    # Scripting ------------------------------------------------------------------------

    def then(self, *replies: Reply) -> MockAgent:
        """Answer the next requests with ``replies``, in order, whatever they ask."""
        self._script.extend(replies)
        return self

    def message(self, text: str) -> Reply:
        return lambda rpc_id, _: _result(
            rpc_id, MessageToDict(SendMessageResponse(message=text_message(text)))
        )

    def task(self, task: Task) -> Reply:
        """Answer with ``task`` (kept: `GetTask` reads it back, and a test may
        move it on by changing ``tasks[task.id]``)."""

        def reply(rpc_id: Any, _: dict[str, Any]) -> httpx.Response:
            self.tasks[task.id] = task
            return _result(rpc_id, MessageToDict(SendMessageResponse(task=task)))

        return reply

    def events(self, *events: StreamResponse) -> Reply:
        """A `SendStreamingMessage` answered as server-sent events, in order."""

        def reply(rpc_id: Any, _: dict[str, Any]) -> httpx.Response:
            lines = []
            for event in events:
                if event.HasField("task"):
                    self.tasks[event.task.id] = event.task
                body = {"jsonrpc": "2.0", "id": rpc_id, "result": MessageToDict(event)}
                lines.append(f"data: {json.dumps(body)}\n\n")
            return httpx.Response(
                200,
                headers={"content-type": "text/event-stream"},
                content="".join(lines).encode(),
            )

        return reply

    @staticmethod
    def status(code: int, body: str = "") -> Reply:
        """An HTTP error status instead of a JSON-RPC answer (a proxy's 503, say)."""
        return lambda *_: httpx.Response(code, text=body or httpx.codes.get_reason_phrase(code))

    @staticmethod
    def error(code: int, message: str) -> Reply:
        """The agent's own JSON-RPC error (A2A 1.0 §9.5)."""
        return lambda rpc_id, _: _error(rpc_id, code, message)

    @staticmethod
    def unreachable() -> Reply:
        """No connection: what httpx raises when nothing listens."""

        def reply(*_: Any) -> httpx.Response:
            raise httpx.ConnectError("connection refused")

        return reply

    @staticmethod
    def slow() -> Reply:
        """A read that times out."""

        def reply(*_: Any) -> httpx.Response:
            raise httpx.ReadTimeout("timed out")

        return reply

    # Serving --------------------------------------------------------------------------

    def __call__(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        method, params, rpc_id = body.get("method"), body.get("params") or {}, body.get("id")
        self.seen.append(Seen(str(method), params, request.headers))
        if self._script:
            return self._script.popleft()(rpc_id, params)
        return self._default(str(method), rpc_id, params)

    def _default(self, method: str, rpc_id: Any, params: dict[str, Any]) -> httpx.Response:
        if method in ("SendMessage", "SendStreamingMessage"):
            said = " ".join(p.get("text", "") for p in params.get("message", {}).get("parts", []))
            if method == "SendMessage":
                return self.message(said)(rpc_id, params)
            return self.events(StreamResponse(message=text_message(said)))(rpc_id, params)
        task = self.tasks.get(str(params.get("id")))
        if task is None:
            return _error(rpc_id, TASK_NOT_FOUND, "Task not found")
        if method == "CancelTask":
            if task.status.state != TaskState.TASK_STATE_WORKING:
                return _error(rpc_id, TASK_NOT_CANCELABLE, "Task cannot be canceled")
            task.status.state = TaskState.TASK_STATE_CANCELED
        if method in ("GetTask", "CancelTask"):
            return _result(rpc_id, MessageToDict(task))
        return _error(rpc_id, -32601, f"Method not found: {method}")

    # Clients --------------------------------------------------------------------------

    def card(self) -> AgentCard:
        card = AgentCard()
        ParseDict(
            {
                "name": "mock agent",
                "description": "answers as scripted",
                "version": "1.0.0",
                "supportedInterfaces": [
                    {
                        "url": self.url,
                        "protocolBinding": TransportProtocol.JSONRPC,
                        "protocolVersion": PROTOCOL_VERSION_CURRENT,
                    }
                ],
                "capabilities": MessageToDict(AgentCapabilities(streaming=self.streaming)),
                "defaultInputModes": ["text/plain"],
                "defaultOutputModes": ["text/plain"],
                "skills": [],
            },
            card,
        )
        return card

    def transport(self, headers: dict[str, str] | None = None) -> JsonRpcTransport:
        """The SDK's JSON-RPC client transport, talking to this agent in process.
        ``headers``: sent on every request, as a pool's default headers are
        (the gateway's pool adds `A2A-Version`: `adapters.a2a`)."""
        http = httpx.AsyncClient(transport=httpx.MockTransport(self), headers=headers)
        return JsonRpcTransport(http, self.card(), self.url)


def status_update(task: Task, state: TaskState, text: str = "") -> StreamResponse:
    """A stream's status event for ``task``."""
    update = TaskStatusUpdateEvent(task_id=task.id, context_id=task.context_id)
    update.status.CopyFrom(TaskStatus(state=state))
    if text:
        update.status.message.CopyFrom(text_message(text))
    return StreamResponse(status_update=update)

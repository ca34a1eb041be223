"""A bare ASGI sales desk for `bench.flow_load`: the demo desk's ``quote``
skill (`gateway.demo.flow_agents`), answered on the wire as that a2a-sdk
agent answers it -- over JSON-RPC, a stream of the task (the message in its
history), working, the quote as an artifact, completed; `SendMessage` the
completed task -- at a fraction of its CPU.

Why: the bench runs the desk in its own process on the same two cores as the
gateway, and the SDK desk took a third of the machine's CPU there (14 ms a
run for two quotes), CPU a vendor's agent spends on its own machine. The
gateway reads the same events either way; ``--desk sdk`` runs the SDK desk."""

from __future__ import annotations

import datetime
import json
import threading
import uuid
from typing import Any

from google.protobuf.json_format import MessageToDict

from bench import asgi_stub
from gateway.demo.flow_agents import quote, sales_card


class QuoteDesk:
    """The desk's app and how many quotes it sent (`count`, as `SalesDesk`)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._quotes = 0

    def count(self, skill: str) -> int:
        with self._lock:
            return self._quotes if skill == "quote" else 0

    def app(self, url: str) -> asgi_stub.App:
        card = MessageToDict(sales_card(url))
        # Its JSON-RPC binding only: the one this desk answers.
        card["supportedInterfaces"] = [
            i for i in card["supportedInterfaces"] if i["protocolBinding"] == "JSONRPC"
        ]
        card_body = json.dumps(card).encode()

        async def app(
            scope: dict[str, Any], receive: asgi_stub.Receive, send: asgi_stub.Send
        ) -> None:
            if scope["type"] == "lifespan":
                await asgi_stub.lifespan(receive, send)
                return
            if scope["method"] == "GET":
                await asgi_stub.respond(send, card_body)
                return
            request = await asgi_stub.read_request(receive)
            method = request.get("method")
            if method not in ("SendMessage", "SendStreamingMessage"):
                error = {"code": -32601, "message": f"method not found: {method}"}
                await asgi_stub.respond(send, _envelope(request, error=error))
                return
            results = self._quoted(request["params"]["message"])
            if method == "SendMessage":
                await asgi_stub.respond(send, _envelope(request, results[-1]))
                return
            events = (_envelope(request, result) for result in results[:-1])
            await asgi_stub.respond_events(send, events)

        return app

    def _quoted(self, message: dict[str, Any]) -> list[dict[str, Any]]:
        """The stream's four results, then `SendMessage`'s (the completed task)."""
        with self._lock:
            self._quotes += 1
        task_id, context_id = str(uuid.uuid4()), str(uuid.uuid4())
        ids = {"taskId": task_id, "contextId": context_id}
        asked = {**message, **ids}
        data: dict[str, Any] = next(
            (p["data"] for p in message.get("parts", []) if "data" in p), {}
        )
        parts = [{"data": quote(data), "mediaType": "application/json"}]
        artifact = {"artifactId": str(uuid.uuid4()), "name": "quote", "parts": parts}

        def status(state: str) -> dict[str, Any]:
            return {"state": f"TASK_STATE_{state}", "timestamp": _now()}

        task = {"id": task_id, "contextId": context_id, "history": [asked]}
        return [
            {"task": {**task, "status": {"state": "TASK_STATE_SUBMITTED"}}},
            {"statusUpdate": {**ids, "status": status("WORKING")}},
            {"artifactUpdate": {**ids, "artifact": artifact}},
            {"statusUpdate": {**ids, "status": status("COMPLETED")}},
            {"task": {**task, "status": status("COMPLETED"), "artifacts": [artifact]}},
        ]


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat().replace("+00:00", "Z")


def _envelope(
    request: dict[str, Any], result: dict[str, Any] | None = None, error: Any = None
) -> bytes:
    document: dict[str, Any] = {"jsonrpc": "2.0", "id": request.get("id")}
    document.update({"error": error} if error is not None else {"result": result})
    return json.dumps(document, separators=(",", ":")).encode()

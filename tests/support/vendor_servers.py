"""Real upstreams speaking other vendors' wire formats, on 127.0.0.1.

`chat_server()` is a small, deterministic OpenAI chat-completions server
(`POST /v1/chat/completions`, streamed and not, the exact JSON shapes of
OpenAI's API); `webhook_server()` a REST endpoint answering a ticket lookup.
Both record every request (`tests.support.inspecting.Recorder`).

The chat server answers ``"echo: <the user's message>"`` (streamed as one
chunk per word). A user message that starts with a keyword asks for trouble:

* ``hold`` -- wait until the test sets `Behaviour.release` (or 30 s);
* ``later`` -- wait until the test sets `Behaviour.later` (or 30 s);
* ``error`` -- HTTP 500 with an OpenAI error object;
* ``garbage`` -- an answer that is not JSON;
* ``tools`` -- a completion with tool calls and no content.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route

from tests.support.inspecting import Recorder
from tests.support.servers import ServerThread

API_KEY = "sk-upstream-canary-7f3a9c"
MODEL = "test-model-1"


@dataclass
class Behaviour:
    release: threading.Event = field(default_factory=threading.Event)
    later: threading.Event = field(default_factory=threading.Event)
    calls: dict[str, int] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def count(self, text: str) -> int:
        with self.lock:
            self.calls[text] = self.calls.get(text, 0) + 1
            return self.calls[text]

    async def hold(self) -> None:
        await asyncio.to_thread(self.release.wait, 30)


def _completion(content: str | None, *, tool_calls: list[Any] | None = None) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": content, "refusal": None}
    if tool_calls:
        message["tool_calls"] = tool_calls
    return {
        "id": "chatcmpl-test123",
        "object": "chat.completion",
        "created": 1764547200,
        "model": MODEL,
        "choices": [
            {
                "index": 0,
                "message": message,
                "logprobs": None,
                "finish_reason": "tool_calls" if tool_calls else "stop",
            }
        ],
        "usage": {"prompt_tokens": 9, "completion_tokens": 3, "total_tokens": 12},
        "system_fingerprint": "fp_test",
    }


def _chunk(delta: dict[str, Any], finish: str | None = None) -> str:
    chunk = {
        "id": "chatcmpl-test123",
        "object": "chat.completion.chunk",
        "created": 1764547200,
        "model": MODEL,
        "system_fingerprint": "fp_test",
        "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
    }
    return f"data: {json.dumps(chunk)}\n\n"


def _error(status: int, message: str, kind: str) -> JSONResponse:
    body = {"error": {"message": message, "type": kind, "param": None, "code": None}}
    return JSONResponse(body, status_code=status)


def chat_app(behaviour: Behaviour) -> Starlette:
    async def completions(request: Request) -> Response:
        if request.headers.get("authorization") != f"Bearer {API_KEY}":
            return _error(401, "Incorrect API key provided.", "invalid_request_error")
        body = await request.json()
        user = body["messages"][-1]["content"]
        behaviour.count(user)
        if user.startswith("hold"):
            await behaviour.hold()
        if user.startswith("later"):
            await asyncio.to_thread(behaviour.later.wait, 30)
        if user.startswith("error"):
            return _error(
                500, "The server had an error while processing your request.", "server_error"
            )
        if user.startswith("garbage"):
            return PlainTextResponse("<html>502 Bad Gateway</html>", status_code=200)
        if user.startswith("tools"):
            call = {
                "id": "call_1",
                "type": "function",
                "function": {"name": "lookup", "arguments": "{}"},
            }
            return JSONResponse(_completion(None, tool_calls=[call]))
        answer = f"echo: {user}"
        if not body.get("stream"):
            return JSONResponse(_completion(answer))

        async def events() -> AsyncIterator[str]:
            yield _chunk({"role": "assistant", "content": "", "refusal": None})
            words = answer.split(" ")
            for n, word in enumerate(words):
                yield _chunk({"content": word if n == 0 else " " + word})
            yield _chunk({}, "stop")
            if (body.get("stream_options") or {}).get("include_usage"):
                # As OpenAI sends it: a last chunk with no choices and the usage.
                usage = {"prompt_tokens": 9, "completion_tokens": 3, "total_tokens": 12}
                chunk = {
                    "id": "chatcmpl-test123",
                    "object": "chat.completion.chunk",
                    "created": 1764547200,
                    "model": MODEL,
                    "choices": [],
                    "usage": usage,
                }
                yield f"data: {json.dumps(chunk)}\n\n"
            yield "data: [DONE]\n\n"

        return StreamingResponse(events(), media_type="text/event-stream")

    return Starlette(routes=[Route("/v1/chat/completions", completions, methods=["POST"])])


def webhook_app(behaviour: Behaviour) -> Starlette:
    async def tickets(request: Request) -> Response:
        if request.headers.get("x-api-key") != API_KEY:
            return JSONResponse({"message": "unauthorised"}, status_code=401)
        body = await request.json()
        behaviour.count(str(body.get("query")))
        if body.get("query") == "hold":
            await behaviour.hold()
        if body.get("query") == "broken":
            return JSONResponse({"unexpected": True})
        if body.get("query") == "fail":
            return JSONResponse({"message": "boom"}, status_code=503)
        return JSONResponse(
            {
                "answer": f"Ticket for {body.get('customer')}: {body.get('query')}",
                "details": {"customer": body.get("customer"), "priority": 2, "tags": ["a"]},
                "lang": request.query_params.get("lang"),
            }
        )

    return Starlette(routes=[Route("/hooks/tickets", tickets, methods=["POST"])])


def chat_server() -> tuple[ServerThread, Recorder, Behaviour]:
    behaviour, recorder = Behaviour(), Recorder()
    server = ServerThread(lambda _url: recorder.middleware(chat_app(behaviour))).start()
    return server, recorder, behaviour


def webhook_server() -> tuple[ServerThread, Recorder, Behaviour]:
    behaviour, recorder = Behaviour(), Recorder()
    server = ServerThread(lambda _url: recorder.middleware(webhook_app(behaviour))).start()
    return server, recorder, behaviour

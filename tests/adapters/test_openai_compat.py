"""The OpenAI-compatible adapter against httpx's MockTransport: wire shapes, SSE, errors."""

from __future__ import annotations

import json
from collections.abc import Callable

import httpx
import pytest

from adapters.base import Credentials, Delta, Reply, Turn
from adapters.errors import UpstreamFailed, UpstreamInvalid, UpstreamUnavailable
from adapters.openai_compat import ChatConfig, OpenAICompatAdapter

KEY = "sk-secret-key-123"
CREDENTIALS = Credentials({"Authorization": f"Bearer {KEY}"})
CONFIG = ChatConfig(
    base_url="http://llm.test/v1/",
    model="m",
    system_prompt="Be brief.",
    skill_instructions={"sum": "Summarise."},
    temperature=0.0,
)


def adapter(handler: Callable[[httpx.Request], httpx.Response]) -> OpenAICompatAdapter:
    http = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    return OpenAICompatAdapter(http, CONFIG, "agent llm")


def sse(*chunks: object) -> httpx.Response:
    lines = [f"data: {json.dumps(c)}\n\n" if not isinstance(c, str) else c for c in chunks]
    return httpx.Response(
        200, headers={"content-type": "text/event-stream"}, content="".join(lines).encode()
    )


def delta(content: str) -> dict[str, object]:
    return {
        "object": "chat.completion.chunk",
        "choices": [{"index": 0, "delta": {"content": content}}],
    }


async def test_a_turn_is_one_chat_request() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(
            200, json={"choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}}]}
        )

    reply = await adapter(handler).call(
        Turn("hi", data={"x": 1}, skill="sum"), CREDENTIALS, timeout_seconds=5
    )
    assert reply == Reply(text="ok")
    (request,) = seen
    assert str(request.url) == "http://llm.test/v1/chat/completions"
    assert request.headers["authorization"] == f"Bearer {KEY}"
    assert json.loads(request.content) == {
        "model": "m",
        "messages": [
            {"role": "system", "content": "Be brief.\n\nSummarise."},
            {"role": "user", "content": 'hi\n\n{"x": 1}'},
        ],
        "stream": False,
        "temperature": 0.0,
    }


async def test_a_stream_yields_deltas_then_the_whole_reply() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        assert json.loads(request.content)["stream"] is True
        return sse(
            ": keep-alive\n\n",
            {"choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]},
            delta("Hel"),
            delta("lo"),
            {"choices": []},
            "data: [DONE]\n\n",
        )

    items = [i async for i in adapter(handler).stream(Turn("x"), CREDENTIALS, timeout_seconds=5)]
    assert items == [Delta("Hel"), Delta("lo"), Reply(text="Hello")]


async def test_a_stream_without_done_or_with_an_error_fails() -> None:
    cut = adapter(lambda r: sse(delta("a")))
    with pytest.raises(UpstreamInvalid, match="without \\[DONE\\]"):
        [i async for i in cut.stream(Turn("x"), CREDENTIALS, timeout_seconds=5)]
    failing = adapter(lambda r: sse(delta("a"), {"error": {"message": f"bad key {KEY}"}}))
    with pytest.raises(UpstreamFailed) as raised:
        [i async for i in failing.stream(Turn("x"), CREDENTIALS, timeout_seconds=5)]
    assert KEY not in str(raised.value) and "***" in str(raised.value)


async def test_error_answers_are_mapped_and_scrubbed() -> None:
    echo = {
        "error": {"message": f"Incorrect API key provided: {KEY}", "type": "invalid_request_error"}
    }
    with pytest.raises(UpstreamFailed) as raised:
        await adapter(lambda r: httpx.Response(401, json=echo)).call(
            Turn("x"), CREDENTIALS, timeout_seconds=5
        )
    assert raised.value.status == 401 and KEY not in str(raised.value)
    with pytest.raises(UpstreamInvalid, match="not a chat completion"):
        await adapter(lambda r: httpx.Response(200, json={"data": []})).call(
            Turn("x"), CREDENTIALS, timeout_seconds=5
        )
    with pytest.raises(UpstreamInvalid, match="JSON"):
        await adapter(lambda r: httpx.Response(200, text="<html>")).call(
            Turn("x"), CREDENTIALS, timeout_seconds=5
        )


async def test_transport_failures_are_unavailable() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    with pytest.raises(UpstreamUnavailable, match="could not be reached"):
        await adapter(handler).call(Turn("x"), CREDENTIALS, timeout_seconds=5)


async def test_usage_comes_back_with_the_reply_when_the_server_reports_it() -> None:
    usage = {"prompt_tokens": 9, "completion_tokens": 3, "total_tokens": 12}

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            200,
            json={
                "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}}],
                "usage": usage,
            },
        )

    reply = await adapter(handler).call(Turn(text="hi"), CREDENTIALS, timeout_seconds=5)
    assert reply.usage is not None
    assert reply.usage.as_dict() == {"input_tokens": 9, "output_tokens": 3, "total_tokens": 12}


async def test_a_streamed_usage_chunk_is_kept_and_no_text() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        usage_chunk = {
            "object": "chat.completion.chunk",
            "choices": [],
            "usage": {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7},
        }
        return sse(delta("a"), delta("b"), usage_chunk, "data: [DONE]\n\n")

    items = [
        item
        async for item in adapter(handler).stream(Turn(text="hi"), CREDENTIALS, timeout_seconds=5)
    ]
    reply = items[-1]
    assert isinstance(reply, Reply) and reply.text == "ab"
    assert reply.usage is not None and reply.usage.total_tokens == 7
    assert [i.text for i in items if isinstance(i, Delta)] == ["a", "b"]


@pytest.mark.parametrize(
    "usage",
    [
        None,
        "12 tokens",
        {"prompt_tokens": -1, "completion_tokens": 3},
        {"prompt_tokens": 1.5, "completion_tokens": 3},
        {"prompt_tokens": True, "completion_tokens": 3},
        {"prompt_tokens": 10**13, "completion_tokens": 3},
        {"completion_tokens": 3},
    ],
)
async def test_usage_that_is_not_whole_counts_is_ignored_not_an_error(usage: object) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            200,
            json={
                "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}}],
                "usage": usage,
            },
        )

    reply = await adapter(handler).call(Turn(text="hi"), CREDENTIALS, timeout_seconds=5)
    assert reply.text == "ok" and reply.usage is None


@pytest.mark.parametrize("asked", [True, False])
async def test_a_stream_asks_for_usage_unless_told_not_to(asked: bool) -> None:
    bodies: list[dict[str, object]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        bodies.append(json.loads(request.content))
        return sse(delta("a"), "data: [DONE]\n\n")

    config = ChatConfig(base_url="http://llm.test/v1", model="m", stream_usage=asked)
    chat = OpenAICompatAdapter(
        httpx.AsyncClient(transport=httpx.MockTransport(handler)), config, "x"
    )
    _ = [i async for i in chat.stream(Turn(text="hi"), CREDENTIALS, timeout_seconds=5)]
    assert ("stream_options" in bodies[0]) is asked
    if asked:
        assert bodies[0]["stream_options"] == {"include_usage": True}

"""bench.asgi_stub, what the benches' bare ASGI agents share: a request's
body read to its last message, one answer whole or as events, the lifespan answered."""

from __future__ import annotations

from typing import Any

from bench import asgi_stub


def _receiving(*messages: dict[str, Any]) -> asgi_stub.Receive:
    waiting = list(messages)

    async def receive() -> dict[str, Any]:
        return waiting.pop(0)

    return receive


def _sending(sent: list[dict[str, Any]]) -> asgi_stub.Send:
    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    return send


async def test_a_body_in_pieces_is_read_whole() -> None:
    receive = _receiving(
        {"type": "http.request", "body": b'{"id": 7, ', "more_body": True},
        {"type": "http.request", "more_body": True},  # an empty piece
        {"type": "http.request", "body": b'"method": "SendMessage"}'},
    )
    assert await asgi_stub.read_request(receive) == {"id": 7, "method": "SendMessage"}


async def test_an_answer_says_its_type_and_length() -> None:
    sent: list[dict[str, Any]] = []
    await asgi_stub.respond(_sending(sent), b"data: x", b"text/event-stream")
    assert sent == [
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"text/event-stream"), (b"content-length", b"7")],
        },
        {"type": "http.response.body", "body": b"data: x"},
    ]


async def test_the_lifespan_is_answered_until_shutdown() -> None:
    sent: list[dict[str, Any]] = []
    receive = _receiving({"type": "lifespan.startup"}, {"type": "lifespan.shutdown"})
    await asgi_stub.lifespan(receive, _sending(sent))
    assert [m["type"] for m in sent] == ["lifespan.startup.complete", "lifespan.shutdown.complete"]


async def test_events_are_written_one_by_one_then_the_stream_ends() -> None:
    sent: list[dict[str, Any]] = []
    await asgi_stub.respond_events(_sending(sent), [b'{"a":1}', b'{"b":2}'])
    assert sent == [
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"text/event-stream"), (b"cache-control", b"no-store")],
        },
        {"type": "http.response.body", "body": b'data: {"a":1}\r\n\r\n', "more_body": True},
        {"type": "http.response.body", "body": b'data: {"b":2}\r\n\r\n', "more_body": True},
        {"type": "http.response.body", "body": b""},
    ]

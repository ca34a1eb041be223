"""`adapters.mcp_sse`'s two decisions: which answers say "legacy server", and
which calls get a session of their own (the transport itself is exercised
end to end in tests/e2e/test_mcp_legacy_sse.py)."""

from __future__ import annotations

from typing import Any

import httpx2
import pytest

from adapters.mcp_sse import PostRefusals, own_session_for
from tests.support.mcp_client_side import StubRelay


@pytest.mark.parametrize(
    ("transport", "capabilities", "legacy", "own"),
    [
        ("sse", {"elicitation": {}}, True, True),
        ("sse", {"sampling": {}}, True, True),
        ("sse", {"roots": {}}, True, True),
        ("sse", {}, True, False),  # nothing the server could ask it
        ("sse", {"extensions": {"io.modelcontextprotocol/ui": {}}}, True, False),
        ("sse", {"elicitation": {}}, False, False),  # 2026-07-28: asked by input_required
        ("http", {"elicitation": {}}, True, False),
        ("stdio", {"elicitation": {}}, True, False),
    ],
)
def test_own_session_only_for_a_legacy_caller_who_can_be_asked(
    transport: str, capabilities: dict[str, Any], legacy: bool, own: bool
) -> None:
    assert own_session_for(transport, StubRelay(capabilities), legacy=legacy) is own


def test_no_relay_no_own_session() -> None:
    assert own_session_for("sse", None, legacy=True) is False


def answer(method: str, status: int) -> httpx2.Response:
    return httpx2.Response(status, request=httpx2.Request(method, "http://127.0.0.1/sse"))


async def test_post_refusals_note_a_posts_4xx_but_not_the_credentials() -> None:
    seen = PostRefusals()
    for method, status in [
        ("POST", 405),
        ("POST", 404),
        ("POST", 401),  # the credential, not the transport
        ("POST", 403),
        ("POST", 500),
        ("POST", 200),
        ("GET", 405),
    ]:
        await seen(answer(method, status))
    assert seen.statuses == [405, 404]


def test_watch_puts_the_hook_on_every_client() -> None:
    seen = PostRefusals()
    made: list[httpx2.AsyncClient] = []

    def http(auth: Any) -> httpx2.AsyncClient:
        made.append(httpx2.AsyncClient())
        return made[-1]

    client = seen.watch(http)(None)
    assert client is made[0] and client.event_hooks["response"] == [seen]

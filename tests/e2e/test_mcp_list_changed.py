"""A federated server's `list_changed` reaches the gateway's clients (issue 16).

A 2026-07-28 server tells of changes only on a `subscriptions/listen` stream
(SEP-2575), so the gateway keeps one open to it and relays what it hears:
tools (once listed again) and prompts, to 2026-07-28 clients' listen streams
and 2025-11-25 sessions. A real SDK server on 127.0.0.1 whose tools change
their own server's lists, the way the conformance suite's everything-server
does; the gateway's probe is slow (an hour), so only the relay can explain a
notice.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import mcp_types as types
import pytest
from mcp.server.mcpserver import Context
from mcp.server.mcpserver.prompts import Prompt

from tests.support.gateway import Gateway, start_gateway
from tests.support.inspecting import Recorder
from tests.support.mcp_clients import MODES, mcp_client
from tests.support.mcp_servers import ToolBox, upstream_server
from tests.support.servers import ServerThread, stop_all
from tests.support.waiting import wait_for


def greet() -> str:
    """Say hello."""
    return "Hello!"


def farewell() -> str:
    """Say goodbye."""
    return "Goodbye!"


def _dynamic() -> str:
    return "dynamic"


@dataclass
class Changing:
    gateway: Gateway
    upstream: ServerThread
    seen: Recorder  # what the upstream was sent

    @property
    def url(self) -> str:
        return self.gateway.url + "/mcp"

    async def token(self) -> str:
        return await anyio.to_thread.run_sync(self.gateway.token, "alice", "")


@pytest.fixture
def changing(tmp_path: Path) -> Iterator[Changing]:
    with _changing(tmp_path) as deployed:
        yield deployed


@contextlib.contextmanager
def _changing(tmp_path: Path, **settings: Any) -> Iterator[Changing]:
    box = ToolBox()
    server = box.server
    server.add_prompt(Prompt.from_function(greet, name="greet"))

    async def trigger_tools(ctx: Context) -> str:
        """Adds a tool and removes it again, then says the list changed."""
        server.add_tool(_dynamic, name="dynamic")
        server.remove_tool("dynamic")
        await ctx.notify_tools_changed()
        return "tools changed"

    async def trigger_prompts(ctx: Context) -> str:
        """Adds a prompt for good, then says the list changed."""
        server.add_prompt(Prompt.from_function(farewell, name="farewell"))
        await ctx.notify_prompts_changed()
        return "prompts changed"

    server.add_tool(trigger_tools, name="trigger_tools")
    server.add_tool(trigger_prompts, name="trigger_prompts")
    upstream, seen, _ = upstream_server(box)
    gateway = start_gateway(tmp_path / "data", None, mcp_probe_seconds=3600, **settings)
    try:
        with gateway.client() as admin:
            response = admin.post(
                "/mcp-servers", json={"name": "Alpha", "url": upstream.url + "/mcp"}
            )
            assert response.status_code == 201, response.text
        yield Changing(gateway, upstream, seen)
    finally:
        stop_all(gateway.server, upstream)


async def _heard(
    changing: Changing,
    mode: str,
    trigger: str,
    notice: type[types.ServerNotification] | Any,
    *,
    tools: bool = False,
    prompts: bool = False,
) -> list[str]:
    """Call ``trigger`` through the gateway and wait for ``notice``; the
    prompts listed afterwards."""
    heard = anyio.Event()

    async def on_message(message: Any) -> None:
        if isinstance(message, notice):
            heard.set()

    async with mcp_client(
        changing.url,
        await changing.token(),
        mode,
        message_handler=on_message,
        hears_notices=mode == "legacy",
    ) as client:
        before = {p.name for p in (await client.list_prompts()).prompts}
        assert "alpha__greet" in before
        if mode == "legacy":
            await client.call_tool(trigger, {})
            with anyio.fail_after(10):
                await heard.wait()
        else:
            async with client.listen(
                tools_list_changed=tools, prompts_list_changed=prompts
            ) as subscription:
                await client.call_tool(trigger, {})
                with anyio.fail_after(10):
                    async for _event in subscription:
                        break
        return [p.name for p in (await client.list_prompts()).prompts]


@pytest.mark.parametrize("mode", MODES)
async def test_an_upstreams_tool_list_change_reaches_listening_clients(
    changing: Changing, mode: str
) -> None:
    await _heard(
        changing,
        mode,
        "alpha__trigger_tools",
        types.ToolListChangedNotification,
        tools=True,
    )


@pytest.mark.parametrize("mode", MODES)
async def test_an_upstreams_prompt_list_change_reaches_listening_clients(
    changing: Changing, mode: str
) -> None:
    prompts = await _heard(
        changing,
        mode,
        "alpha__trigger_prompts",
        types.PromptListChangedNotification,
        prompts=True,
    )
    # The gateway's kept listing was dropped: the new prompt is there at once.
    assert "alpha__farewell" in prompts


async def test_a_listener_hears_only_what_it_asked_for(changing: Changing) -> None:
    token = await changing.token()
    async with (
        mcp_client(changing.url, token, "2026-07-28") as client,
        client.listen(prompts_list_changed=True) as subscription,
    ):
        await client.call_tool("alpha__trigger_tools", {})
        with contextlib.suppress(TimeoutError), anyio.fail_after(1.5):
            async for event in subscription:
                raise AssertionError(f"heard {event!r}")


def test_a_listen_stream_that_times_out_is_opened_again(tmp_path: Path) -> None:
    """The upstream stream is silent for longer than the read timeout: it
    drops, and the gateway listens again at once (not after the probe)."""
    with _changing(tmp_path, upstream_timeout_seconds=1) as changing:

        def listens() -> int:
            return sum(b"subscriptions/listen" in c.body for c in changing.seen.calls())

        wait_for(lambda: listens() >= 2, what="the listen stream dropped and opened again")
        heard = _heard(
            changing,
            "2026-07-28",
            "alpha__trigger_tools",
            types.ToolListChangedNotification,
            tools=True,
        )
        asyncio.run(heard)

"""`bench.mcp_wire_client.wire_clients` with several users' tokens
(`bench.tool_catalog --users`): each client sends its own, over real HTTP."""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web

from bench.mcp_wire_client import wire_clients


async def test_client_k_sends_token_k_modulo_their_number() -> None:
    seen: list[tuple[int, str]] = []

    async def answer(request: web.Request) -> web.Response:
        body: dict[str, Any] = await request.json()
        seen.append((body["params"]["client"], request.headers["Authorization"]))
        return web.json_response({"jsonrpc": "2.0", "id": body["id"], "result": {}})

    app = web.Application()
    app.router.add_post("/mcp", answer)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        port = runner.addresses[0][1]
        url = f"http://127.0.0.1:{port}/mcp"
        async with wire_clients(url, ["a", "b", "c"], 5) as clients:
            await asyncio.gather(*(c.request("ping", {"client": k}) for k, c in enumerate(clients)))
        async with wire_clients(url, ["alone"], 2) as clients:
            await asyncio.gather(
                *(c.request("ping", {"client": 10 + k}) for k, c in enumerate(clients))
            )
    finally:
        await runner.cleanup()
    assert sorted(seen) == [
        (0, "Bearer a"),
        (1, "Bearer b"),
        (2, "Bearer c"),
        (3, "Bearer a"),
        (4, "Bearer b"),
        (10, "Bearer alone"),
        (11, "Bearer alone"),
    ]

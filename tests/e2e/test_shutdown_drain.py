"""A busy gateway asked to stop (SIGTERM) drains for `shutdown_drain_seconds`
and then cuts what is still running: a client holding a call open cannot
keep it from stopping (uvicorn, left to itself, waits for every request).
docs/operations.md, "Stopping"."""

from __future__ import annotations

import asyncio
import signal
import threading
from pathlib import Path
from typing import Any

from gateway.demo.process import GatewayProcess
from policies.scopes import ADMIN_SCOPE
from tests.support.mcp_clients import mcp_client
from tests.support.mcp_servers import Hang, ToolBox, upstream_server
from tests.support.waiting import wait_for


def test_a_call_still_running_after_the_drain_is_cut_and_the_gateway_exits(
    tmp_path: Path,
) -> None:
    box, hang = ToolBox(), Hang()  # the tool answers after 30 s, unless cancelled
    box.server.add_tool(hang.hang, name="hang", description="Waits until cancelled.")
    upstream, _, _ = upstream_server(box)
    gateway = GatewayProcess(tmp_path / "data", settings={"shutdown_drain_seconds": 1})
    outcome: dict[str, Any] = {}
    try:
        gateway.start()
        with gateway.client("admin", ADMIN_SCOPE) as admin:
            added = admin.post("/mcp-servers", json={"name": "up", "url": upstream.url + "/mcp"})
            assert added.status_code == 201, added.text
        token = gateway.token("alice", "")

        async def call() -> None:
            async with mcp_client(gateway.url + "/mcp", token, "2026-07-28") as client:
                outcome["result"] = await client.call_tool("up__hang", {})

        def caller() -> None:
            try:
                asyncio.run(call())
            except BaseException as exc:  # the gateway cut the call: what the client saw
                outcome["error"] = exc

        thread = threading.Thread(target=caller, daemon=True)
        thread.start()
        assert hang.started.wait(30), "the call never reached the upstream"
        assert gateway.process is not None
        gateway.process.terminate()
        # The tool would answer after 30 s; uvicorn without a drain bound
        # waits for it. With the drain (1 s) the gateway is gone long before.
        code = gateway.process.wait(timeout=20)
        # uvicorn, done, raises the signal it took again: the exit of a
        # process that stopped on SIGTERM, as process managers expect.
        assert code == -signal.SIGTERM, gateway.log.read_text(errors="replace")[-2000:]
        log = gateway.log.read_text(errors="replace")
        assert "timeout graceful shutdown exceeded" in log  # cut by the drain's bound
        thread.join(30)
        assert not thread.is_alive()
        assert "result" not in outcome, outcome  # cut, not answered
        # Cutting the call cancelled it at the upstream too.
        wait_for(hang.cancelled.is_set, what="the upstream call to be cancelled")
    finally:
        gateway.stop()
        upstream.stop()

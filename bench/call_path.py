"""The project files one call runs through, measured, not read.

    python -m bench.call_path                 # A2A SendMessage and MCP tools/call
    python -m bench.call_path --calls 5 --show-functions

Issue 53 asks that one A2A call and one MCP call each cross at most 10 of
the project's files. Reading the code misses what is chosen at run time (a
handler per agent kind, a transport per binding), so this runs the calls.

A gateway (`switchboard serve --dev`, SQLite) runs in a child process under a
profile hook (`sys.setprofile`), with an echo A2A agent (the official
a2a-sdk) and an echo MCP server (the official mcp SDK) registered. After two
warm-up calls, each measured call is made with the hook on: it notes every
function of `gateway/`, `adapters/`, `registry/` or `policies/` that runs in
the request's own asyncio task or a task started from it (a context
variable set where uvicorn begins the request marks them; the periodic jobs
and the audit writer's own flush task are not the call's). A file counts when
every measured call entered it (one call's chance work, a cache filled, does
not). Printed per call kind: the files in the order they were first
entered, how many, and the moves between files (a stay in a file, left and
entered again, is a move each way).
"""

from __future__ import annotations

import argparse
import asyncio
import contextvars
import itertools
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from types import FrameType
from typing import Any

import httpx

from bench import ports
from bench.a2a_forwarding import HOST, REPO, spawn, stop_process
from bench.mcp_gateway import _switchboard

Trail = list[tuple[str, str]]  # (file, function) as entered
LAYERS = ("gateway/", "adapters/", "registry/", "policies/")
ROOT = str(REPO) + os.sep


# --- the child: a gateway under the hook ------------------------------------

_in_call: contextvars.ContextVar[bool] = contextvars.ContextVar("in_call", default=False)
_recording = False
_trail: list[tuple[str, str]] = []


def _hook(frame: FrameType, event: str, _arg: Any) -> None:
    if event != "call" or not _recording:
        return
    code = frame.f_code
    if code.co_name == "run_asgi" and "uvicorn" in code.co_filename:
        _in_call.set(True)  # this request's task, and every task it starts
        return
    if not _in_call.get() or not code.co_filename.startswith(ROOT):
        return
    path = code.co_filename[len(ROOT) :]
    if path.startswith(LAYERS):
        _trail.append((path, code.co_qualname))


def _traced_gateway(argv: list[str], out: str) -> None:
    """`switchboard ARGV` with the hook; SIGUSR1 starts a recording, SIGUSR2
    writes it to ``out`` (JSON lines, one per recording)."""

    def start(*_: Any) -> None:
        global _recording
        _trail.clear()
        _recording = True

    def stop(*_: Any) -> None:
        global _recording
        _recording = False
        with open(out, "a") as sink:
            sink.write(json.dumps(_trail) + "\n")

    signal.signal(signal.SIGUSR1, start)
    signal.signal(signal.SIGUSR2, stop)
    sys.setprofile(_hook)
    from gateway.cli import main

    sys.argv = ["switchboard", *argv]
    main()


# --- the parent: the calls ---------------------------------------------------


def _serving(code: str, port: int) -> subprocess.Popen[bytes]:
    return spawn([sys.executable, "-c", code], port, timeout=120)


async def _a2a_calls(base: str, token: str, record: Recorder) -> list[Trail]:
    """SendMessage to the echo agent over JSON-RPC (A2A 1.0)."""
    headers = {"Authorization": f"Bearer {token}", "A2A-Version": "1.0"}
    async with httpx.AsyncClient(headers=headers, timeout=60) as client:

        async def call() -> None:
            message = {
                "messageId": os.urandom(8).hex(),
                "role": "ROLE_USER",
                "parts": [{"text": "hi"}],
            }
            body = {
                "jsonrpc": "2.0",
                "id": 1,
                "method": "SendMessage",
                "params": {"message": message},
            }
            answer = await client.post(f"{base}/a2a/echo", json=body)
            answer.raise_for_status()
            assert "result" in answer.json(), answer.text

        return await record(call)


async def _mcp_calls(base: str, token: str, record: Recorder) -> list[Trail]:
    """tools/call of the echo server's tool, 2026-07-28, on an open client
    (its listing is made before, outside the recordings)."""
    import httpx2
    from mcp import Client
    from mcp.client.streamable_http import streamable_http_client

    headers = {"Authorization": f"Bearer {token}"}
    async with (
        httpx2.AsyncClient(headers=headers, timeout=60) as http,
        Client(streamable_http_client(f"{base}/mcp", http_client=http), mode="2026-07-28") as mcp,
    ):
        await mcp.list_tools()

        async def call() -> None:
            result = await mcp.call_tool("tools__echo", {"text": "hi"})
            assert not result.is_error, result

        return await record(call)


class Recorder:
    """Each measured call made with the gateway's hook on."""

    def __init__(self, pid: int, out: Path, calls: int) -> None:
        self.pid, self.out, self.calls = pid, out, calls

    async def __call__(self, call: Callable[[], Awaitable[None]]) -> list[Trail]:
        for _ in range(2):  # warm: caches filled, connections open
            await call()
        trails = []
        for _ in range(self.calls):
            before = len(self.out.read_text().splitlines())
            os.kill(self.pid, signal.SIGUSR1)
            await asyncio.sleep(0.3)  # a signal is handled between bytecodes: let it land
            await call()
            await asyncio.sleep(0.3)
            os.kill(self.pid, signal.SIGUSR2)
            deadline = time.monotonic() + 10
            while len(lines := self.out.read_text().splitlines()) <= before:
                if time.monotonic() > deadline:
                    raise RuntimeError("the gateway wrote no recording")
                await asyncio.sleep(0.05)
            trails.append([(path, name) for path, name in json.loads(lines[before])])
        return trails


def _report(kind: str, trails: list[Trail], show_functions: bool) -> None:
    common = set.intersection(*({path for path, _ in trail} for trail in trails))
    first = trails[0]
    order = list(dict.fromkeys(path for path, _ in first if path in common))
    moves = [sum(1 for a, b in itertools.pairwise(t) if a[0] != b[0]) for t in trails]
    functions = {name for trail in trails for name in trail}
    print(f"\n{kind}: {len(order)} files entered by every call; moves between files {moves}")
    for path in order:
        print(f"  {path}")
        if show_functions:
            names = sorted({name for p, name in functions if p == path})
            print("      " + ", ".join(names))


A2A = "A2A SendMessage (JSON-RPC, A2A 1.0)"
MCP = "MCP tools/call (2026-07-28)"


def measure(calls: int) -> dict[str, list[Trail]]:
    """Each call kind's trails, ``calls`` recordings each."""
    agent_port, mcp_port, gw_port = ports.free_port(), ports.free_port(), ports.free_port()
    agent = _serving(
        f"from bench.a2a_forwarding import _serve_agent; _serve_agent({agent_port})", agent_port
    )
    upstream = _serving(
        f"from bench.mcp_gateway import _serve_upstream; _serve_upstream({mcp_port})", mcp_port
    )
    data = tempfile.mkdtemp(prefix="switchboard-call-path-")
    out = Path(data) / "trails.jsonl"
    out.touch()
    serve = ["serve", "--dev", "--data-dir", data, "--host", HOST, "--port", str(gw_port)]
    code = f"from bench.call_path import _traced_gateway; _traced_gateway({serve!r}, {str(out)!r})"
    try:
        gateway = spawn([sys.executable, "-c", code], gw_port, timeout=300)
    except BaseException:
        stop_process(agent)
        stop_process(upstream)
        raise
    try:
        _switchboard(data, "agents", "add", f"http://{HOST}:{agent_port}", "--id", "echo")
        _switchboard(data, "mcp", "add", "Echo", f"http://{HOST}:{mcp_port}/mcp", "--id", "tools")
        token = _switchboard(data, "token", "issue", "--sub", "path-user")
        base = f"http://{HOST}:{gw_port}"
        record = Recorder(gateway.pid, out, calls)
        return {
            A2A: asyncio.run(_a2a_calls(base, token, record)),
            MCP: asyncio.run(_mcp_calls(base, token, record)),
        }
    finally:
        stop_process(gateway)
        stop_process(agent)
        stop_process(upstream)
        shutil.rmtree(data, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=3, help="measured calls per kind")
    parser.add_argument("--show-functions", action="store_true")
    ports.add_argument(parser)
    args = parser.parse_args()
    for kind, trails in measure(args.calls).items():
        _report(kind, trails, args.show_functions)


if __name__ == "__main__":
    main()

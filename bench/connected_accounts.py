"""What a connected account costs per `tools/call`, against a shared credential.

    python -m bench.connected_accounts                 # 2 rounds of 400 calls per leg
    python -m bench.connected_accounts --calls 1000 --rounds 3

One vendor (`gateway.demo.vendor`: an MCP server that trusts only its own
authorization server, both the `mcp` SDK's) and one gateway in a process of
its own (`switchboard serve --dev`, SQLite, sealing on). The vendor's one MCP
server is registered twice: `crm` with `user_oauth` (the user connected
their account through the console first; each call reads the user's
connection from the vault and names it in the audit record) and `shared`
with a `static_header` carrying one token the vendor also honours (the
shared service credential this feature exists to replace). The load is the
official `mcp` client on 2026-07-28, one caller awaiting each call; the legs
alternate per round. `gw µs/call` is the gateway process's CPU per call; the
ratio is taken within each round.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx
import httpx2
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.server.auth.provider import AccessToken

from bench.a2a_forwarding import _cpu_seconds
from gateway.demo.consent_story import _connect
from gateway.demo.process import GatewayProcess
from gateway.demo.servers import quiet_libraries
from gateway.demo.vendor import Vendor

SHARED_TOKEN = "bench-shared-service-token"  # noqa: S105 - a test value


def _wait_for_tools(gateway: GatewayProcess, server: str) -> None:
    deadline = time.monotonic() + 30
    with gateway.client("admin", "switchboard:admin") as admin:
        while not admin.get(f"/mcp-servers/{server}").json().get("tools"):
            if time.monotonic() > deadline:
                raise SystemExit(f"{server}'s tools were never listed")
            time.sleep(0.1)


async def _calls(url: str, token: str, tool: str, count: int) -> None:
    http = httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=30)
    async with http, Client(streamable_http_client(url, http_client=http), mode="2026-07-28") as c:
        await c.call_tool(tool, {})  # warm
        for _ in range(count):
            result = await c.call_tool(tool, {})
            if result.is_error:
                raise SystemExit(f"{tool} failed: {result.content}")


def _leg(gateway: GatewayProcess, token: str, tool: str, count: int) -> float:
    """Gateway CPU µs per call."""
    before = _cpu_seconds(gateway.pid)
    asyncio.run(_calls(gateway.url + "/mcp", token, tool, count))
    return (_cpu_seconds(gateway.pid) - before) / count * 1e6


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=400)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    quiet_libraries()
    root = Path(tempfile.mkdtemp(prefix="bench-connected-"))
    vendor = Vendor(access_seconds=3600).start()
    gateway = GatewayProcess(
        root / "gateway",
        settings={"secret_key": "a-sealing-secret-for-the-connected-accounts-bench"},
    )
    try:
        gateway.start()
        # The vendor honours one long-lived service token too: the shared leg's.
        vendor.provider.access[SHARED_TOKEN] = AccessToken(
            token=SHARED_TOKEN,
            client_id="service",
            scopes=list(vendor.scopes),
            expires_at=int(time.time()) + 86400,
            resource=vendor.mcp_url,
            subject="service@vendor",
        )
        with gateway.client("admin", "switchboard:admin") as admin:
            for name, credential, resource in (
                ("crm", {"type": "user_oauth"}, None),
                (
                    "shared",
                    {"type": "static_header", "value": f"Bearer {SHARED_TOKEN}"},
                    "urn:bench:shared",  # one resource per target: the URL is crm'
                ),
            ):
                body = {"name": name, "url": vendor.mcp_url, "credential": credential}
                if resource:
                    body["resource"] = resource
                answer = admin.post("/mcp-servers", json=body)
                if answer.status_code != 201:
                    raise SystemExit(f"registering {name}: {answer.text}")
        _connect(gateway, vendor, "admin", "switchboard:admin")
        _wait_for_tools(gateway, "crm")
        _connect(gateway, vendor, "alice")
        token = gateway.token("alice", "")
        print(f"connected accounts: {args.calls} calls per leg, {args.rounds} rounds")
        print(f"{'round':>5} {'shared µs/call':>15} {'user_oauth µs/call':>19} {'ratio':>6}")
        _leg(gateway, token, "shared__whoami", 50)  # warm both paths, unmeasured
        _leg(gateway, token, "crm__whoami", 50)
        ratios = []
        for round_ in range(1, args.rounds + 1):
            shared = _leg(gateway, token, "shared__whoami", args.calls)
            own = _leg(gateway, token, "crm__whoami", args.calls)
            ratios.append(own / shared)
            print(f"{round_:>5} {shared:>15,.0f} {own:>19,.0f} {own / shared:>5.2f}x")
        print(
            f"median ratio {statistics.median(ratios):.2f}x (user_oauth over a shared credential)"
        )
        return 0
    except httpx.HTTPError as exc:
        print(f"bench failed: {exc}", file=sys.stderr)
        return 1
    finally:
        gateway.stop()
        vendor.stop()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
